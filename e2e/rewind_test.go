package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// A standby that lost its data is rebuilt from the primary log: the
// storage-applier, stopped, is rewound to offset 0 (the log holds the whole
// history, from before the tables were created), started again, and the
// standby and the cache end equal to the primary. The rewind refuses
// without --confirm, while an applier runs, inside a transaction and
// forward.
func TestRewindRebuildsALostStandby(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 40)
	rewind := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "storage-applier"), append([]string{"rewind", "--config", p.cfgPath}, args...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("rewind %s: error %v, want ok %v:\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		return string(out)
	}
	mustContain(t, rewind(false, "--from-offset", "0", "--confirm"), "is running on this standby")

	p.applier.stop(syscall.SIGTERM)
	var end int64 // the last primary offset in the standby log
	for _, kr := range records(t, e, e.Cfg.Kafka.StandbyTopic) {
		r, err := schemas.Decode(kr.Value)
		if err != nil {
			t.Fatal(err)
		}
		end = max(end, r.Standby.PrimaryOffset)
	}
	testenv.Exec(t, e.Standby, "DROP DATABASE "+e.DB) // the standby's data is lost
	mustContain(t, rewind(false, "--from-offset", "0"), "WARNING: rewind of standby checkpoint", "back to offset 0", "nothing changed: run again with --confirm")
	mustContain(t, rewind(false, "--from-offset", "999999", "--confirm"), "past the standby's next offset")
	mid := int64(-1) // the second row of a transaction
	for _, kr := range records(t, e, e.Cfg.Kafka.PrimaryTopic) {
		if r, err := schemas.Decode(kr.Value); err == nil && r.Txn.Index == 1 {
			mid = kr.Offset
			break
		}
	}
	mustContain(t, rewind(false, "--from-offset", strconv.FormatInt(mid, 10), "--confirm"), "not its first record")
	mustContain(t, rewind(false, "--from-time", "yesterday"), "want RFC 3339")
	mustContain(t, rewind(true, "--from-time", "1h", "--confirm"), "back to offset 0", "rewound: the storage-applier applies from offset 0")

	p.applier = start(t, p.cfgPath, "storage-applier")
	p.applier.waitLog("the standby was rewound")
	writeBatch(t, e, 40, 10)
	consistent(t, e, 90*time.Second)
	// Applied again, so published again: what the standby log held twice.
	assertRepublished(t, e, func(off int64) int {
		if off <= end {
			return 2
		}
		return 1
	})
}
