package cacheapply

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/testenv"
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

// The first fit trusts every key it finds; a key that joins later (slots
// moved while this process ran) is trusted only once this process wrote
// it, and a key that leaves is forgotten, so that older offsets in it
// cannot read as writes lost when it comes back.
func TestWatermarksThatJoinLaterAreTrustedOnceWritten(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	shard := func(start, end int, master string) redis.ClusterSlot {
		return redis.ClusterSlot{Start: start, End: end, Nodes: []redis.ClusterNode{{ID: master}}}
	}
	m := newWatermarks(e.Cfg.Cache.Group+"-trust", nil, true)
	m.refit([]redis.ClusterSlot{shard(1, 200, "a"), shard(0, 0, "b"), shard(201, 16383, "b")})
	atStart, joined := m.key(1), m.key(100)
	if !slices.Contains(m.keys, atStart) || !m.trusted[atStart] {
		t.Fatalf("first fit: keys %v, trusted %v; want %s among them, trusted", m.keys, m.trusted, atStart)
	}
	// Both hold offsets written long ago, below the committed 50.
	for _, k := range []string{atStart, joined} {
		if err := e.Redis.HSet(ctx, k, "0", 10).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Redis.Del(context.Background(), k) })
	}
	committed := map[int32]int64{0: 50}
	lost := func() map[int32]int64 {
		t.Helper()
		from, gone, err := m.lost(ctx, e.Redis, e.Redis.Pipeline(), committed)
		if err != nil || gone {
			t.Fatalf("lost: gone %v, %v", gone, err)
		}
		return from
	}
	if from := lost(); from[0] != 10 {
		t.Fatalf("a key of the first fit below the committed offset: lost from %v, want 10", from)
	}
	// Slots move: a's lowest is 100 now.
	m.refit([]redis.ClusterSlot{shard(100, 200, "a"), shard(0, 99, "b"), shard(201, 16383, "b")})
	if slices.Contains(m.keys, atStart) || m.trusted[atStart] || !slices.Contains(m.keys, joined) || m.trusted[joined] {
		t.Fatalf("after the move: keys %v, trusted %v", m.keys, m.trusted)
	}
	if from := lost(); len(from) != 0 {
		t.Fatalf("a key that joined, not yet written: lost from %v, want nothing", from)
	}
	w := &writer{rdb: e.Redis}
	t.Cleanup(func() { e.Redis.Del(context.Background(), m.keys...) })
	if err := m.write(ctx, w, map[int32]int64{0: 40}); err != nil {
		t.Fatal(err)
	}
	if from := lost(); from[0] != 40 {
		t.Fatalf("the key this process wrote: lost from %v, want 40", from)
	}
}
