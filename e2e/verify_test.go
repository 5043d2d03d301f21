package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// verify storage and verify cache compare on demand and exit non-zero on a
// difference, naming it; warm writes lost keys back from the standby.
func TestVerifyAndWarm(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 20)
	consistent(t, e, 60*time.Second)
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--config", p.cfgPath)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("%s: error %v, want ok %v:\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		return string(out)
	}
	mustContain(t, run(true, "storage-applier", "verify", "storage"), e.DB+".users", "equal")
	mustContain(t, run(true, "cache-applier", "verify", "cache"), "0 missing, 0 with a different value, 0 orphan keys")

	ctx := context.Background()
	e.Redis.Del(ctx, e.Cfg.Cache.KeyPrefix+"user:1", e.Cfg.Cache.KeyPrefix+"item:2")
	mustContain(t, run(false, "cache-applier", "verify", "cache", "--wait", "1s"), "2 missing", e.Cfg.Cache.KeyPrefix+"user:1", "cache differs")
	mustContain(t, run(true, "cache-applier", "warm"), "cache warmed from the standby at version")
	run(true, "producer", "verify", "cache", "--wait", "1s")

	testenv.Exec(t, e.Standby, "UPDATE "+e.DB+".users SET name = 'tampered' WHERE id = 5")
	mustContain(t, run(false, "storage-applier", "verify", "storage", "--wait", "1s"), "DIFFERENT", "tampered", "storage differs")
}
