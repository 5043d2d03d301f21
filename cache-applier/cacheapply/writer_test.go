package cacheapply

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// The version guard on real Redis: an older or replayed change never
// overwrites a newer one, and an eviction is not undone by a late older write.
func TestOlderVersionNeverOverwritesNewer(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	w := &writer{rdb: e.Redis, tombstoneTTL: time.Hour}
	key := e.Cfg.Cache.KeyPrefix + "user:1"
	hash := func(name string) op {
		return op{key: key, mode: modeHash, payload: []any{"name", name}}
	}
	snap := func(name string) op {
		o := hash(name)
		o.snapshot = true
		return o
	}
	steps := []struct {
		what    string
		op      op
		version int64
		applied int
		want    string // the name field after the step; "" means no key
	}{
		{"first write", hash("v5"), 5, 1, "v5"},
		{"older write is ignored", hash("v3"), 3, 0, "v5"},
		{"replay of the same version is ignored", hash("v5-replayed"), 5, 0, "v5"},
		{"newer write wins", hash("v9"), 9, 1, "v9"},
		{"eviction", op{key: key, mode: modeDelete}, 10, 1, ""},
		{"late older write cannot undo the eviction", hash("v7"), 7, 0, ""},
		{"newer write after the eviction", hash("v11"), 11, 1, "v11"},
		{"a snapshot at the same version may write again", snap("v11-snapshot"), 11, 1, "v11-snapshot"},
		{"an older snapshot may not", snap("v10-snapshot"), 10, 0, "v11-snapshot"},
	}
	for _, s := range steps {
		s.op.version = schemas.FormatVersion(s.version)
		n, err := w.write(ctx, []op{s.op})
		if err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if n != s.applied {
			t.Errorf("%s: applied %d, want %d", s.what, n, s.applied)
		}
		got, _ := e.Redis.HGet(ctx, key, "name").Result()
		if got != s.want {
			t.Fatalf("%s: name = %q, want %q", s.what, got, s.want)
		}
	}
	// Versions compare as numbers although Redis compares strings.
	if v, _ := e.Redis.Get(ctx, cache.VersionKey(key)).Result(); v != schemas.FormatVersion(11) {
		t.Fatalf("version key = %q", v)
	}
}

// Redis forgets its scripts on restart; the writer loads the script again.
func TestWriterReloadsScriptAfterFlush(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	w := &writer{rdb: e.Redis, tombstoneTTL: time.Hour}
	if err := e.Redis.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	key := e.Cfg.Cache.KeyPrefix + "k"
	n, err := w.write(ctx, []op{{key: key, version: schemas.FormatVersion(1), mode: modeString, ttl: time.Minute, payload: []any{"v"}}})
	if err != nil || n != 1 {
		t.Fatalf("write after SCRIPT FLUSH: %d, %v", n, err)
	}
	if ttl := e.Redis.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of a value written with ttl 1m is %s", ttl)
	}
}
