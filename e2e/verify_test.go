package e2e

import (
	"context"
	"syscall"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// verify storage and verify cache compare on demand and exit non-zero on a
// difference, naming it; warm writes lost keys back from the standby, and
// replay from the standby log.
func TestVerifyAndWarm(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 20)
	run := func(wantOK bool, args ...string) string { t.Helper(); return p.run(t, wantOK, args...) }
	// The report, and on standard error the progress's last line.
	mustContain(t, run(true, "storage-applier", "verify", "storage"), e.DB+".users", "equal", "verify storage: 40 rows in ")
	mustContain(t, run(true, "cache-applier", "verify", "cache"), "0 missing, 0 with a different value, 0 orphan keys", "verify cache: ")

	// The cache rebuilt at the current checkpoint (its marker deleted): each
	// key's version is then the one warm writes at.
	ctx := context.Background()
	e.Redis.Del(ctx, "lockstep:cache:"+e.Cfg.Cache.Group)
	cacheReady(t, e)
	e.Redis.Del(ctx, e.Cfg.Cache.KeyPrefix+"user:1", e.Cfg.Cache.KeyPrefix+"item:2")
	mustContain(t, run(false, "cache-applier", "verify", "cache", "--wait", "1s"), "2 missing", e.Cfg.Cache.KeyPrefix+"user:1", "cache differs")
	// Keys no row explains, as an application may leave them: warm evicts.
	orphans := []string{e.Cfg.Cache.KeyPrefix + "user:999", e.Cfg.Cache.KeyPrefix + "sess:5"}
	for _, k := range orphans {
		e.Redis.HSet(ctx, k, "name", "filled by the application")
	}
	mustContain(t, run(true, "cache-applier", "warm"), "cache warmed from the standby at version")
	run(true, "producer", "verify", "cache", "--wait", "1s")
	if n := e.Redis.Exists(ctx, orphans...).Val(); n != 0 {
		t.Fatalf("%d of %v left after warm, want both evicted (no row explains them)", n, orphans)
	}

	// replay: the cache and its versions wiped, the cache-applier stopped;
	// the standby log written again from its start.
	p.cacheApplier.stop(syscall.SIGTERM)
	keys := e.Redis.Keys(ctx, "*"+e.Cfg.Cache.KeyPrefix+"*").Val()
	e.Redis.Del(ctx, keys...)
	mustContain(t, run(false, "cache-applier", "verify", "cache", "--wait", "1s"), "cache differs")
	mustContain(t, run(false, "cache-applier", "replay", "--from-time", "yesterday"), "want RFC 3339")
	mustContain(t, run(true, "cache-applier", "replay", "--from-offset", "0"), "replayed offsets 0..", "cache ops: ")
	run(true, "cache-applier", "verify", "cache", "--wait", "1s")
	mustContain(t, run(true, "cache-applier", "replay", "--from-time", "1h"), "older than what Redis held")

	testenv.Exec(t, e.Standby, "UPDATE "+e.DB+".users SET name = 'tampered' WHERE id = 5")
	mustContain(t, run(false, "storage-applier", "verify", "storage", "--wait", "1s"), "DIFFERENT", "tampered", "storage differs")
}
