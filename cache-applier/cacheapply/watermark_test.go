package cacheapply

import (
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A master gets a watermark key of its own when it holds no spread key:
// its slots are few, or scattered so that none is a multiple of
// spreadStep.
func TestMastersWithoutASpreadKeyAreWatched(t *testing.T) {
	shard := func(start, end int, master string) redis.ClusterSlot {
		return redis.ClusterSlot{Start: start, End: end, Nodes: []redis.ClusterNode{{ID: master}, {ID: master + "-replica"}}}
	}
	cases := []struct {
		what   string
		shards []redis.ClusterSlot
		want   []int
	}{
		{"three masters of contiguous thirds", []redis.ClusterSlot{shard(0, 5460, "a"), shard(5461, 10922, "b"), shard(10923, 16383, "c")}, nil},
		{"a master of two ranges between multiples of spreadStep, at its lowest slot",
			[]redis.ClusterSlot{shard(300, 400, "a"), shard(1, spreadStep-1, "a"), shard(spreadStep, 299, "b"), shard(401, 16383, "c"), shard(0, 0, "c")}, []int{1}},
		{"a spread key's slot at the end of a range", []redis.ClusterSlot{shard(1, spreadStep, "a"), shard(0, 0, "b"), shard(spreadStep+1, 16383, "b")}, nil},
		{"two masters of a few slots each", []redis.ClusterSlot{shard(0, 9, "a"), shard(10, 19, "b"), shard(20, 29, "c"), shard(30, 16383, "a")}, []int{10, 20}},
		{"nodes without ids, told apart by address", []redis.ClusterSlot{
			{Start: 0, End: 16199, Nodes: []redis.ClusterNode{{Addr: "10.0.0.1:6379"}}},
			{Start: 16200, End: 16383, Nodes: []redis.ClusterNode{{Addr: "10.0.0.2:6379"}}},
		}, []int{16200}},
	}
	for _, c := range cases {
		if got := unwatched(c.shards); !slices.Equal(got, c.want) {
			t.Errorf("%s: unwatched %v, want %v", c.what, got, c.want)
		}
	}
}
