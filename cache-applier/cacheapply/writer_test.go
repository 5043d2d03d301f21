package cacheapply

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
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
		epoch   int64  // of the primary log version is an offset of
	}{
		{"first write", hash("v5"), 5, 1, "v5", 0},
		{"older write is ignored", hash("v3"), 3, 0, "v5", 0},
		{"replay of the same version is ignored", hash("v5-replayed"), 5, 0, "v5", 0},
		{"newer write wins", hash("v9"), 9, 1, "v9", 0},
		{"eviction", op{key: key, mode: modeDelete}, 10, 1, "", 0},
		{"late older write cannot undo the eviction", hash("v7"), 7, 0, "", 0},
		{"newer write after the eviction", hash("v11"), 11, 1, "v11", 0},
		{"a snapshot at the same version may write again", snap("v11-snapshot"), 11, 1, "v11-snapshot", 0},
		{"an older snapshot may not", snap("v10-snapshot"), 10, 0, "v11-snapshot", 0},
		{"a write of a later epoch wins whatever its offset", hash("e1-v2"), 2, 1, "e1-v2", 1},
		{"one of the earlier epoch no longer does", hash("v1000"), 1000, 0, "e1-v2", 0},
		{"nor an older one of the same epoch", hash("e1-v1"), 1, 0, "e1-v2", 1},
		{"offsets of an epoch compare as numbers", hash("e1-v10"), 10, 1, "e1-v10", 1},
		{"and epochs too", hash("e10-v0"), 0, 1, "e10-v0", 10},
	}
	for _, s := range steps {
		s.op.version = schemas.FormatVersion(s.epoch, s.version)
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
	if v, _ := e.Redis.Get(ctx, cache.VersionKey(key)).Result(); v != schemas.FormatVersion(10, 0) {
		t.Fatalf("version key = %q", v)
	}
}

// A write replaces the key's value whole: a hash loses the fields of
// columns now NULL, a string takes the place of a hash (a rule's format
// changed) and drops the TTL the value had, and a hash with a TTL gets it.
func TestAWriteReplacesTheValueWhole(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	w := &writer{rdb: e.Redis, tombstoneTTL: time.Hour}
	key := e.Cfg.Cache.KeyPrefix + "user:2"
	expiry := func() string {
		if e.Redis.TTL(ctx, key).Val() > 0 {
			return "expires"
		}
		return "stays"
	}
	hash := func() string { return fmt.Sprint(e.Redis.HGetAll(ctx, key).Val(), " ", expiry()) }
	str := func() string { return e.Redis.Get(ctx, key).Val() + " " + expiry() }
	steps := []struct {
		what string
		op   op
		read func() string
		want string
	}{
		{"a hash of two fields", op{mode: modeHash, ttl: time.Minute, payload: []any{"name", "ann", "email", "a@x"}}, hash, "map[email:a@x name:ann] expires"},
		{"its email now NULL", op{mode: modeHash, ttl: time.Minute, payload: []any{"name", "ann"}}, hash, "map[name:ann] expires"},
		{"as JSON, without a TTL", op{mode: modeString, payload: []any{`{"name":"ann"}`}}, str, `{"name":"ann"} stays`},
		{"as a hash again", op{mode: modeHash, payload: []any{"name", "bob"}}, hash, "map[name:bob] stays"},
	}
	for i, s := range steps {
		s.op.key, s.op.version = key, schemas.FormatVersion(0, int64(i+1))
		if n, err := w.write(ctx, []op{s.op}); err != nil || n != 1 {
			t.Fatalf("%s: applied %d, %v", s.what, n, err)
		}
		if got := s.read(); got != s.want {
			t.Fatalf("%s: Redis holds %s, want %s", s.what, got, s.want)
		}
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
	n, err := w.write(ctx, []op{{key: key, version: schemas.FormatVersion(0, 1), mode: modeString, ttl: time.Minute, payload: []any{"v"}}})
	if err != nil || n != 1 {
		t.Fatalf("write after SCRIPT FLUSH: %d, %v", n, err)
	}
	if ttl := e.Redis.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of a value written with ttl 1m is %s", ttl)
	}
}

// A cache written by an earlier lockstep named its version keys
// lockstep:v:<key>: the first check renames them, TTLs kept, and leaves
// alone a version key already under today's name.
func TestOldVersionKeysAreRenamed(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	p := e.Cfg.Cache.KeyPrefix
	for k, v := range map[string]string{p + "user:1": "00000000000000000005", p + "user:2": "00000000000000000007", p + "user:{3}": "00000000000000000009"} {
		e.Redis.Set(ctx, "lockstep:v:"+k, v, 0)
	}
	e.Redis.Set(ctx, "lockstep:v:"+p+"gone:1", "00000000000000000006", time.Hour) // a tombstone
	e.Redis.Set(ctx, cache.VersionKey(p+"user:2"), "00000000000000000008", 0)     // written since: newer
	marker := markerKey(e.Cfg.Cache.Group)
	e.Redis.HSet(ctx, marker, "floor", -1)
	b := newCacheApplier(e.Cfg, e.Redis, slog.New(slog.DiscardHandler), &hooks{}).rebuild
	if err := b.check(ctx, e.Redis.HGetAll(ctx, marker).Val()); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{p + "user:1": "00000000000000000005", p + "user:2": "00000000000000000008", p + "user:{3}": "00000000000000000009", p + "gone:1": "00000000000000000006"} {
		if got := e.Redis.Get(ctx, cache.VersionKey(k)).Val(); got != want {
			t.Errorf("%s = %q, want %q", cache.VersionKey(k), got, want)
		}
		if old := "lockstep:v:" + k; old != cache.VersionKey(k) && e.Redis.Exists(ctx, old).Val() != 0 {
			t.Errorf("%s is still there", old)
		}
	}
	if ttl := e.Redis.TTL(ctx, cache.VersionKey(p+"gone:1")).Val(); ttl < 59*time.Minute {
		t.Errorf("the tombstone's TTL after the rename = %s, want about 1h", ttl)
	}
	if got := e.Redis.HGet(ctx, marker, "layout").Val(); got != keyLayout {
		t.Errorf("marker layout = %q, want %q", got, keyLayout)
	}
}

func TestFoldKeepsTheNewestOpOfEachKey(t *testing.T) {
	v := func(offset int64) string { return schemas.FormatVersion(0, offset) }
	ops := []op{
		{key: "a", version: v(12), mode: modeHash},
		{key: "b", version: v(3), mode: modeHash},
		{key: "a", version: v(10), mode: modeDelete}, // from another partition: older
		{key: "b", version: v(5), mode: modeDelete},
		{key: "c", version: v(7), mode: modeString},
		{key: "c", version: v(7), mode: modeDelete}, // same version: the later
	}
	got := fold(ops)
	want := []op{ops[0], ops[3], ops[5]}
	if len(got) != len(want) {
		t.Fatalf("fold kept %d ops, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].key != want[i].key || got[i].version != want[i].version || got[i].mode != want[i].mode {
			t.Errorf("op %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFloorOfEveryMarker(t *testing.T) {
	for in, want := range map[string]string{
		"-1":                               "",
		"42":                               schemas.FormatVersion(0, 42), // a marker from before epochs
		"e0000000003.00000000000000000009": schemas.FormatVersion(3, 9),
	} {
		if got, err := parseFloor(in); err != nil || got != want {
			t.Errorf("parseFloor(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "e3.9", "e0000000003-00000000000000000009"} {
		if got, err := parseFloor(bad); err == nil {
			t.Errorf("parseFloor(%q) = %q, want an error", bad, got)
		}
	}
}

// The masters with fewer replicas connected than cache.wait_replicas asks
// for are named with how many they have: the single test Redis has none,
// each master of the test cluster one.
func TestFewReplicasAreNamed(t *testing.T) {
	ctx := context.Background()
	single := testenv.New(t)
	w := &writer{rdb: single.Redis, waitReplicas: 1}
	few, err := w.fewReplicas(ctx)
	if want := single.Cfg.Redis.Address + " (0 connected)"; err != nil || len(few) != 1 || few[0] != want {
		t.Fatalf("fewReplicas on a Redis without replicas = %q, %v; want [%s]", few, err, want)
	}

	cluster := testenv.NewOnCluster(t)
	var masters atomic.Int32 // EachMaster calls concurrently
	if err := redisconn.EachMaster(ctx, cluster.Redis, func(context.Context, *redis.Client) error { masters.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	w = &writer{rdb: cluster.Redis, waitReplicas: 1}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		few, err := w.fewReplicas(ctx)
		return err == nil && len(few) == 0, fmt.Sprintf("fewReplicas(1) on a cluster with a replica per master = %q, %v; want none", few, err)
	})
	w.waitReplicas = 2
	few, err = w.fewReplicas(ctx)
	if err != nil || len(few) != int(masters.Load()) || !strings.HasSuffix(few[0], " (1 connected)") {
		t.Fatalf("fewReplicas(2) on a cluster with a replica per master = %q, %v; want each of its %d masters, with 1 connected", few, err, masters.Load())
	}
}
