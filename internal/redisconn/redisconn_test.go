package redisconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
	acl := func(rules ...string) {
		t.Helper()
		err := e.Redis.(*redis.ClusterClient).ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.Do(ctx, append([]any{"ACL", "SETUSER", user}, toAny(rules)...)...).Err()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	acl("on", ">pw", "~"+e.Cfg.Cache.KeyPrefix+"*", "~lockstep:*", "resetchannels", "-@all", "+@read", "+@write", "+@keyspace", "+@scripting", "+@connection", "-@dangerous", "+cluster|slots")
	t.Cleanup(func() {
		_ = e.Redis.(*redis.ClusterClient).ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Do(ctx, "ACL", "DELUSER", user).Err() })
	})
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

	acl("-cluster|slots")
	if _, err := redisconn.Open(ctx, c); err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "cluster|slots") {
		t.Fatalf("Open without cluster|slots: %v, want NOPERM naming it", err)
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
