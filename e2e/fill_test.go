package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// A read-through fill that read the database before an update committed,
// and writes after lockstep evicted the key, must not bring the old value
// back. The same interleaving with a plain SET NX does, which shows the race
// is real.
func TestSlowFillRacingAnUpdate(t *testing.T) {
	e := newEnv(t) // sessions: an evict rule; the application fills them
	startPipeline(t, e)
	cacheReady(t, e) // no rebuild from a snapshot in the middle of the race
	createTables(t, e)
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+e.DB+".sessions VALUES (1, 'old'), (2, 'old')")
	consistent(t, e, 60*time.Second)
	ctx := context.Background()

	// token reads a session from the standby, as the application does.
	token := func(id string) string {
		var tok string
		if err := e.Standby.QueryRow("SELECT token FROM " + e.DB + ".sessions WHERE id = " + id).Scan(&tok); err != nil {
			t.Error(err)
		}
		return tok
	}
	// race runs fill for a session; fill reads the database, then the
	// update commits and lockstep evicts, then fill writes.
	race := func(id string, fill func(key string, read func() string)) {
		key := e.Cfg.Cache.KeyPrefix + "sess:" + id
		before := e.Redis.Get(ctx, cache.VersionKey(key)).Val()
		fill(key, func() string {
			old := token(id)
			testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".sessions SET token = 'new' WHERE id = "+id)
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				return e.Redis.Get(ctx, cache.VersionKey(key)).Val() > before, "lockstep has not evicted " + key
			})
			return old
		})
	}

	race("1", func(key string, read func() string) {
		_, filled, err := cache.Fill(ctx, e.Redis, key, func(context.Context) (cache.Value, error) {
			return cache.Value{String: read()}, nil
		})
		if err != nil || filled {
			t.Fatalf("cache.Fill across the eviction: filled %v, err %v", filled, err)
		}
	})
	if got, err := e.Redis.Get(ctx, e.Cfg.Cache.KeyPrefix+"sess:1").Result(); err == nil {
		t.Fatalf("sess:1 = %q after the eviction: the fill brought back old data", got)
	}

	race("2", func(key string, read func() string) {
		e.Redis.SetNX(ctx, key, read(), 0)
	})
	if got := e.Redis.Get(ctx, e.Cfg.Cache.KeyPrefix+"sess:2").Val(); got != "old" {
		t.Fatalf("a plain SET NX across the eviction left %q; the race did not happen as staged", got)
	}

	// The next miss fills what the database holds now.
	got, err := cache.GetString(ctx, e.Redis, e.Cfg.Cache.KeyPrefix+"sess:1", func(context.Context) (cache.Value, error) {
		return cache.Value{String: token("1")}, nil
	})
	if err != nil || got != "new" || e.Redis.Get(ctx, e.Cfg.Cache.KeyPrefix+"sess:1").Val() != "new" {
		t.Fatalf("fill after the eviction: %q, %v", got, err)
	}
}
