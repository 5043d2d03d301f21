package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// The fill protocol on real Redis. Changes are made here the way the
// cache-applier makes them: the key rewritten or deleted, and its version
// key set. (e2e/fill_test.go races a fill against the real pipeline.)
func TestFillWritesOnlyWhatNoChangeReplaced(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	rdb := e.Redis
	key := e.Cfg.Cache.KeyPrefix + "user:1"
	row := func(name string) func(context.Context) (cache.Value, error) {
		return func(context.Context) (cache.Value, error) {
			return cache.Value{Hash: map[string]string{"id": "1", "name": name}, TTL: time.Minute}, nil
		}
	}

	// A miss with no version yet: the fill writes, with the TTL.
	v, filled, err := cache.Fill(ctx, rdb, key, row("ada"))
	if err != nil || !filled || v.Hash["name"] != "ada" {
		t.Fatalf("first fill: filled %v, %v, err %v", filled, v, err)
	}
	if name, _ := rdb.HGet(ctx, key, "name").Result(); name != "ada" {
		t.Fatalf("after the first fill name = %q", name)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL after the fill = %v, want up to 1m", ttl)
	}

	// The key is there: a fill never overwrites it.
	if _, filled, _ := cache.Fill(ctx, rdb, key, row("stale")); filled {
		t.Fatal("a fill overwrote a present key")
	}

	// An eviction at version 7 before the fill began: the database read
	// comes after it, so the fill writes.
	rdb.Del(ctx, key)
	rdb.Set(ctx, cache.VersionKey(key), "00000000000000000007", time.Hour)
	if _, filled, err := cache.Fill(ctx, rdb, key, row("grace")); err != nil || !filled {
		t.Fatalf("fill after an eviction: filled %v, err %v", filled, err)
	}

	// An eviction while the fill reads the database: the fill read old
	// data and must not write it.
	rdb.Del(ctx, key)
	_, filled, err = cache.Fill(ctx, rdb, key, func(ctx context.Context) (cache.Value, error) {
		v, _ := row("old")(ctx)
		rdb.Set(ctx, cache.VersionKey(key), "00000000000000000008", time.Hour)
		return v, nil
	})
	if err != nil || filled {
		t.Fatalf("fill across an eviction: filled %v, err %v", filled, err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("the fill brought back data older than the eviction")
	}

	// The first change to a key never cached also stops a fill in flight.
	fresh := e.Cfg.Cache.KeyPrefix + "order:9"
	_, filled, _ = cache.Fill(ctx, rdb, fresh, func(context.Context) (cache.Value, error) {
		rdb.Set(ctx, fresh, `{"id":"9"}`, 0)
		rdb.Set(ctx, cache.VersionKey(fresh), "00000000000000000009", 0)
		return cache.Value{String: `{"id":"9","old":"1"}`}, nil
	})
	if got := rdb.Get(ctx, fresh).Val(); filled || got != `{"id":"9"}` {
		t.Fatalf("fill across a first write: filled %v, value %s", filled, got)
	}

	// A load error writes nothing and comes back as is.
	rdb.Del(ctx, fresh)
	notFound := errors.New("no such user")
	if _, _, err := cache.Fill(ctx, rdb, fresh, func(context.Context) (cache.Value, error) { return cache.Value{}, notFound }); !errors.Is(err, notFound) {
		t.Fatalf("load error: got %v", err)
	}
	if rdb.Exists(ctx, fresh).Val() != 0 {
		t.Fatal("a failed load wrote the key")
	}

	// The read-through helpers: a hit does not load; a miss loads and fills.
	loads := 0
	counted := func(ctx context.Context) (cache.Value, error) { loads++; return cache.Value{String: "json"}, nil }
	for range 2 {
		if s, err := cache.GetString(ctx, rdb, fresh, counted); err != nil || s != "json" {
			t.Fatalf("GetString = %q, %v", s, err)
		}
	}
	if loads != 1 {
		t.Fatalf("GetString loaded %d times over a miss and a hit, want 1", loads)
	}
	rdb.Del(ctx, key)
	for range 2 {
		if h, err := cache.GetHash(ctx, rdb, key, row("hopper")); err != nil || h["name"] != "hopper" {
			t.Fatalf("GetHash = %v, %v", h, err)
		}
	}
}
