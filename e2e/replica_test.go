package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// writeUsers changes rows of the users table until stop is closed, as an
// application does: updates, inserts, deletes and REPLACE over rows that
// exist. It returns how many statements it ran.
func writeUsers(t *testing.T, e *testenv.Env, stop <-chan struct{}, from int) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := from
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := rand.IntN(from) + 1
			var q string
			switch rand.IntN(4) {
			case 0:
				q = fmt.Sprintf("UPDATE %s.users SET balance = balance + 1, name = 'u%d' WHERE id = %d", e.DB, next, id)
			case 1:
				next++
				q = fmt.Sprintf("INSERT INTO %s.users (id, email, name, balance) VALUES (%d, 'n%d@x', 'new', 1)", e.DB, next, next)
			case 2:
				q = fmt.Sprintf("DELETE FROM %s.users WHERE id = %d", e.DB, id)
			default:
				q = fmt.Sprintf("REPLACE INTO %s.users (id, email, name, balance) VALUES (%d, 'r%d@x', 'replaced', 2)", e.DB, id, id)
			}
			if _, err := e.Primary.ExecContext(context.Background(), q); err != nil && !strings.Contains(err.Error(), "Duplicate entry") {
				t.Errorf("%s: %v", q, err)
				return
			}
			n.Add(1)
		}
	}()
	return &n
}

// seedUsers fills the users table with n rows.
func seedUsers(t *testing.T, e *testenv.Env, n int) {
	t.Helper()
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users (id, email, name, balance) SELECT seq, CONCAT('u', seq, '@x'), 'seed', seq FROM %s.seq_1_to_%d", e.DB, e.DB, n))
}

// pt-online-schema-change on a cached table under writes: the shadow table
// filled by triggers and a chunked copy, the atomic swap and the drop reach
// the standby and the cache as they happened on the primary.
func TestOnlineSchemaChangeWithPerconaToolkit(t *testing.T) {
	tool, err := exec.LookPath("pt-online-schema-change")
	if err != nil {
		t.Fatal("pt-online-schema-change (Debian's percona-toolkit) is not installed: scripts/test.sh installs it")
	}
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".users ADD UNIQUE KEY (email)")
	seedUsers(t, e, 3000)
	stop := make(chan struct{})
	wrote := writeUsers(t, e, stop, 3000)
	host, port, _ := strings.Cut(e.Cfg.Primary.Address, ":")
	dsn := fmt.Sprintf("h=%s,P=%s,u=%s,D=%s,t=users", host, port, e.Cfg.Primary.User, e.DB)
	if e.Cfg.Primary.Password != "" {
		dsn += ",p=" + e.Cfg.Primary.Password
	}
	out, err := exec.Command(tool, "--alter", "ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x'", dsn,
		"--execute", "--chunk-size=200", "--chunk-time=0", "--recursion-method=none", "--no-check-alter").CombinedOutput()
	close(stop)
	if err != nil {
		t.Fatalf("pt-online-schema-change: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Successfully altered") {
		t.Fatalf("pt-online-schema-change did not finish:\n%s", out)
	}
	t.Logf("%d statements written during the change", wrote.Load())
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".users SET note = 'after' WHERE id <= 10")
	consistent(t, e, 90*time.Second)
	if got := hget(t, e, "user:1", "note"); got != "after" && exists(t, e, "user:1") {
		t.Fatalf("user:1 note in the cache = %q, want %q", got, "after")
	}
	for _, s := range []*proc{p.applier, p.cacheApplier} {
		if done, _ := s.exited(); done {
			t.Fatalf("%s stopped", s.name)
		}
	}
}
