package redisconn_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// An ACL user as README, Security and Redis Cluster describe it, on every
// node of the test cluster: Open learns the topology with it, a key and its
// version key are written in one script, and Scan finds every key on every
// master. Without cluster|slots, Open says what the user may not run.
func TestClusterAsACLUser(t *testing.T) {
	e := testenv.NewOnCluster(t)
	ctx := context.Background()
	user := e.DB + "-acl"
	// Every node the cluster knows, not only those its client's topology
	// lists (a replica still syncing or a node just failed over is left
	// out of CLUSTER SLOTS), and every rule each time: a node that missed
	// one call gets the whole user from the next.
	rules := []string{"on", ">pw", "~" + e.Cfg.Cache.KeyPrefix + "*", "~lockstep:*", "resetchannels", "-@all", "+@read", "+@write", "+@keyspace", "+@scripting", "+@connection", "-@dangerous", "+info", "+cluster|slots"}
	onEveryNode := func(args ...any) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			err := eachNode(ctx, e.Redis.(*redis.ClusterClient), func(n *redis.Client) error { return n.Do(ctx, args...).Err() })
			return err == nil, fmt.Sprint(err)
		})
	}
	onEveryNode(append([]any{"ACL", "SETUSER", user}, toAny(rules)...)...)
	t.Cleanup(func() { onEveryNode("ACL", "DELUSER", user) })
	c := config.Redis{Address: e.Cfg.Redis.Address, Cluster: true, User: user, Password: "pw"}
	rdb, err := redisconn.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for i := range 100 {
		k := fmt.Sprintf("%sk:%d", e.Cfg.Cache.KeyPrefix, i)
		if err := rdb.Eval(ctx, "redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[2], 1)", []string{k, cache.VersionKey(k)}).Err(); err != nil {
			t.Fatalf("write %s and its version key: %v", k, err)
		}
	}
	n := 0
	if err := redisconn.Scan(ctx, rdb, e.Cfg.Cache.KeyPrefix+"k:*", func(string) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("Scan found %d keys on the masters, want 100", n)
	}

	onEveryNode(append([]any{"ACL", "SETUSER", user}, toAny(append(rules, "-cluster|slots"))...)...)
	if _, err := redisconn.Open(ctx, c); err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "cluster|slots") {
		t.Fatalf("Open without cluster|slots: %v, want NOPERM naming it", err)
	}
}

// EachNode visits every master and replica of the test cluster once (the
// cache-applier's eviction check reads each: a replica may be promoted).
// A replica that other tests restarted is left out of the cluster's slot
// map until it has synced, so the test waits for the topology to settle.
func TestEachNodeOnCluster(t *testing.T) {
	e := testenv.NewOnCluster(t)
	ctx := context.Background()
	cl := e.Redis.(*redis.ClusterClient)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var want []string
		if err := eachNode(ctx, cl, func(n *redis.Client) error {
			want = append(want, n.Options().Addr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		cl.ReloadState(ctx)
		if err := redisconn.EachNode(ctx, e.Redis, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, c.Options().Addr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(want)
		return slices.Equal(got, want) && len(got) >= 6, fmt.Sprintf("EachNode visited %v; the cluster's nodes are %v", got, want)
	})
}

// eachNode calls fn on every node a master of c knows.
func eachNode(ctx context.Context, c *redis.ClusterClient, fn func(*redis.Client) error) error {
	m, err := c.MasterForKey(ctx, "")
	if err != nil {
		return err
	}
	nodes, err := testenv.ClusterNodes(ctx, m)
	if err != nil {
		return err
	}
	for _, node := range nodes {
		n := redis.NewClient(&redis.Options{Addr: node.Addr})
		err := fn(n)
		n.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", node.Addr, err)
		}
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
