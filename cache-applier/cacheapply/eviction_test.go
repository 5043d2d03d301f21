package cacheapply

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

func TestEvicts(t *testing.T) {
	for _, c := range []struct {
		maxmemory int64
		policy    string
		want      bool
	}{
		{0, "allkeys-lru", false}, // no limit: nothing is evicted
		{0, "noeviction", false},
		{1 << 30, "noeviction", false},
		{1 << 30, "allkeys-lru", true},
		{1 << 30, "allkeys-lfu", true},
		{1 << 30, "allkeys-random", true},
		{1 << 30, "volatile-lru", true}, // tombstones have a TTL
		{1 << 30, "volatile-ttl", true},
	} {
		if got := evicts(c.maxmemory, c.policy); got != c.want {
			t.Errorf("evicts(%d, %s) = %v, want %v", c.maxmemory, c.policy, got, c.want)
		}
	}
}

func TestMemorySettings(t *testing.T) {
	info := "# Memory\r\nused_memory:1024\r\nmaxmemory:67108864\r\nmaxmemory_human:64.00M\r\nmaxmemory_policy:allkeys-lru\r\n"
	m, p, err := memorySettings(info)
	if err != nil || m != 64<<20 || p != "allkeys-lru" {
		t.Fatalf("memorySettings = %d, %q, %v; want 67108864, allkeys-lru", m, p, err)
	}
	if _, _, err := memorySettings("# Memory\r\nused_memory:1024\r\n"); err == nil {
		t.Fatal("memorySettings of an INFO without maxmemory: no error")
	}
}

// On a private redis-server: the cache-applier's Redis is refused while it
// may evict keys, unless cache.allow_eviction, and taken with a warning
// when the user may not run INFO.
func TestARedisThatMayEvictIsRefused(t *testing.T) {
	ctx := context.Background()
	addr := testenv.OwnRedis(t, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	open := func(cfg *config.Config) (string, error) {
		var logged bytes.Buffer
		rdb, err := openRedis(ctx, cfg, slog.New(slog.NewTextHandler(&logged, nil)))
		if err == nil {
			rdb.Close()
		}
		return logged.String(), err
	}
	cfg := &config.Config{Redis: config.Redis{Address: addr}}

	_, err := open(cfg)
	if err == nil || !service.IsPermanent(err) {
		t.Fatalf("open a Redis with maxmemory-policy allkeys-lru: %v, want a permanent error", err)
	}
	for _, want := range []string{addr, "maxmemory 67108864", "allkeys-lru", "noeviction", "cache.allow_eviction"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}

	cfg.Cache.AllowEviction = true
	if logged, err := open(cfg); err != nil || !strings.Contains(logged, "cache.allow_eviction accepts it") {
		t.Errorf("with cache.allow_eviction: %v, logged %q; want it taken with a warning", err, logged)
	}
	cfg.Cache.AllowEviction = false

	for _, set := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "0"}} {
		if err := admin.ConfigSet(ctx, set[0], set[1]).Err(); err != nil {
			t.Fatal(err)
		}
		if logged, err := open(cfg); err != nil || strings.Contains(logged, "WARN") {
			t.Errorf("after CONFIG SET %s %s: %v, logged %q; want it taken silently", set[0], set[1], err, logged)
		}
		admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru")
	}

	// A running cache-applier checks again: eviction turned on meanwhile
	// stops it.
	cfg.Cache.Group = "eviction-test"
	a := newCacheApplier(cfg, admin, slog.New(slog.DiscardHandler), &hooks{})
	if err := a.recheckEviction(ctx); err != nil {
		t.Fatalf("recheck on a Redis that keeps its keys: %v", err)
	}
	admin.ConfigSet(ctx, "maxmemory", "64mb")
	if err := a.recheckEviction(ctx); err != nil {
		t.Fatalf("recheck within a minute of the last: %v, want none", err)
	}
	a.evictionChecked = time.Now().Add(-evictionRecheck)
	if err := a.recheckEviction(ctx); err == nil || !service.IsPermanent(err) || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Fatalf("recheck after eviction was turned on: %v, want a permanent error naming the policy", err)
	}

	// An ACL user without +info (README's rules before this check): the
	// policy cannot be read.
	if err := admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "resetchannels", "-@all", "+@read", "+@write", "+@keyspace", "+@scripting", "+@connection", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	cfg.Redis.User, cfg.Redis.Password = "noinfo", "pw"
	if logged, err := open(cfg); err != nil || !strings.Contains(logged, "grant the Redis user +info") {
		t.Errorf("as a user without +info: %v, logged %q; want it taken with a warning naming +info", err, logged)
	}
}
