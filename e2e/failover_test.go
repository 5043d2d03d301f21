package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// The primary is killed mid-workload; failover fences the primary log,
// waits for the standby and its cache, verifies the cache (the primary is
// gone) and reports the primary as unreachable. The standby then holds
// whole transactions only, a prefix of what the primary committed. With the
// old primary back, failover again counts exactly the transactions the
// standby lacks, and storage verify agrees.
func TestFailoverAfterThePrimaryDies(t *testing.T) {
	e := testenv.NewOwnPrimary(t)
	withRules(e)
	p := startPipeline(t, e)
	createTables(t, e)

	var committed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			// each transaction a user and an item with the same id
			_, err := e.Primary.Exec(fmt.Sprintf("BEGIN; INSERT INTO %s.users VALUES (%d, 'u%d@x', 'n', %d, NULL); INSERT INTO %s.items VALUES (%d, 'item', 1.5, NOW(6)); COMMIT",
				e.DB, i, i, i, e.DB, i))
			if err != nil {
				return // the primary died
			}
			committed.Store(int64(i))
		}
	}()
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		n := testenv.Count(t, e.Standby, e.DB+".users")
		return n >= 300, fmt.Sprintf("%d transactions on the standby, waiting for 300", n)
	})
	// The producer falls behind (stopped), so that the primary dies with
	// transactions it has not published: the loss failover must report.
	if err := p.producer.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	behind := committed.Load() + 20
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return committed.Load() >= behind, "the workload has not committed 20 more transactions"
	})
	e.KillPrimary(t)
	<-done
	p.producer.stop(syscall.SIGKILL)

	failover := func(wantOK bool) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "failover", "--config", p.cfgPath, "--wait", "2m").CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("failover: error %v, want ok %v:\n%s", err, wantOK, out)
		}
		return string(out)
	}
	out := failover(true)
	t.Logf("failover with the primary dead:\n%s", out)
	mustContain(t, out, "1/5 fenced: producer", "2/5 the standby applied everything", "3/5 the cache-applier drained",
		"storage: NOT COMPARED: the primary", "0 missing, 0 with a different value, 0 orphan keys", "the primary is unreachable", "READY: the standby")

	// Whole transactions only, in order: ids 1..n in both tables.
	var users, items, maxID int
	for q, dst := range map[string]*int{
		"SELECT COUNT(*) FROM " + e.DB + ".users":             &users,
		"SELECT COUNT(*) FROM " + e.DB + ".items":             &items,
		"SELECT COALESCE(MAX(id), 0) FROM " + e.DB + ".users": &maxID,
	} {
		if err := e.Standby.QueryRow(q).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	// The producer stopped when the workload had seen behind-20 commits;
	// one more may have been committed and published before the workload
	// heard of it (one connection), never two.
	if users != items || users != maxID || int64(users) > behind-19 || users < 300 {
		t.Fatalf("standby after failover: %d users, %d items, max id %d; the workload saw %d commits: want a whole prefix of at least 300", users, items, maxID, committed.Load())
	}

	// The old primary comes back (its producer stays stopped, as the
	// runbook says): the loss is counted exactly, and storage verify
	// names the rows.
	e.StartPrimary(t)
	var primaryUsers int
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		err := e.Primary.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+e.DB+".users").Scan(&primaryUsers)
		return err == nil, fmt.Sprintf("the primary is not back: %v", err)
	})
	lost := primaryUsers - users
	if lost < 20 {
		t.Fatalf("the primary has %d users, the standby %d: want at least the 20 transactions the producer did not publish lost", primaryUsers, users)
	}
	out = failover(false)
	m := regexp.MustCompile(`committed (\d+) transaction\(s\) the standby does not have`).FindStringSubmatch(out)
	if m == nil || m[1] != fmt.Sprint(lost) {
		t.Fatalf("failover with the primary back: want it to count %d lost transactions (primary %d users, standby %d):\n%s", lost, primaryUsers, users, out)
	}
	mustContain(t, out, "DIFFERENT", "missing on the standby", "the standby is caught up but differs")
	t.Logf("%d transactions committed before the kill, %d on the standby, %d lost", primaryUsers, users, lost)
}
