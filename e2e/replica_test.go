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

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
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

// Foreign keys three levels deep, with ON DELETE and ON UPDATE actions, on
// cached tables: the standby runs the actions the primary ran (which the
// binlog does not carry) and the cache drops or rewrites the keys of every
// row they changed; a key that went never comes back.
func TestForeignKeyCascadesReachStandbyAndCache(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: e.DB + ".orders", Keys: []string{"order:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: e.DB + ".lines", Keys: []string{"line:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: e.DB + ".notes", Keys: []string{"note:{id}"}, Action: "refresh", Format: "hash"},
	)
	p := startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+".orders (id INT PRIMARY KEY, user_id INT NOT NULL, total INT, FOREIGN KEY (user_id) REFERENCES "+db+".users (id) ON DELETE CASCADE ON UPDATE CASCADE)",
		"CREATE TABLE "+db+".lines (id INT PRIMARY KEY, order_id INT NOT NULL, qty INT, CONSTRAINT line_order FOREIGN KEY (order_id) REFERENCES "+db+".orders (id) ON DELETE CASCADE)",
		"CREATE TABLE "+db+".notes (id INT PRIMARY KEY, order_id INT NULL, body VARCHAR(20), FOREIGN KEY (order_id) REFERENCES "+db+".orders (id) ON DELETE SET NULL)",
		"INSERT INTO "+db+".users (id, email) VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x')",
		"INSERT INTO "+db+".orders VALUES (10, 1, 5), (11, 1, 6), (12, 2, 7), (13, 3, 8)",
		"INSERT INTO "+db+".lines VALUES (100, 10, 1), (101, 10, 2), (102, 11, 3), (103, 12, 4), (104, 13, 5)",
		"INSERT INTO "+db+".notes VALUES (1000, 10, 'gone with 10'), (1001, 12, 'stays'), (1002, 11, 'gone with 11')",
	)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return exists(t, e, "line:100") && exists(t, e, "note:1002") && exists(t, e, "order:13"), "the rows are not all cached yet"
	})

	// The observer: a key it saw go never comes back.
	watched := []string{"order:10", "order:11", "line:100", "line:101", "line:102"}
	stop := make(chan struct{})
	var regressed atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		gone := map[string]bool{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, k := range watched {
				n, err := e.Redis.Exists(context.Background(), e.Cfg.Cache.KeyPrefix+k).Result()
				if err != nil {
					continue // the test is ending
				}
				if gone[k] && n == 1 {
					regressed.Store(k)
				}
				gone[k] = gone[k] || n == 0
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	// The application's session, with foreign_key_checks on (lockstep's
	// own test connections have it off).
	session(t, e.Primary, "SET SESSION foreign_key_checks = 1",
		"DELETE FROM "+db+".users WHERE id = 1",        // orders 10, 11 -> lines 100-102; notes 1000, 1002 set null
		"UPDATE "+db+".users SET id = 20 WHERE id = 2", // order 12's user_id -> 20
		"DELETE FROM "+db+".orders WHERE id = 13",      // line 104
	)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		for _, k := range append(watched, "line:104", "order:13") {
			if exists(t, e, k) {
				return false, k + " is still cached"
			}
		}
		return hget(t, e, "order:12", "user_id") == "20" && hget(t, e, "note:1000", "order_id") == "" && exists(t, e, "note:1000"),
			"order:12 or note:1000 not rewritten yet"
	})
	consistent(t, e, 60*time.Second)
	if k := regressed.Load(); k != nil {
		t.Fatalf("the observer saw %s come back after it was gone", k)
	}
	if n := standbyCount(t, e, "lines", "1=1"); n != 1 {
		t.Fatalf("standby lines has %d rows, want 1 (line 103)", n)
	}

	// The standby log marks what the standby did itself.
	var cascades []string
	for _, kr := range records(t, e, e.Cfg.Kafka.StandbyTopic) {
		r, err := schemas.Decode(kr.Value)
		if err != nil {
			t.Fatal(err)
		}
		if r.Standby.Cascade != nil {
			cascades = append(cascades, fmt.Sprintf("%s %s %s", r.Op, r.Name(), r.Standby.Cascade.Action))
		}
	}
	// orders 10 and 11, lines 100-102, notes 1000 and 1002 (user 1);
	// order 12 (user 2's new id); line 104 (order 13)
	if len(cascades) != 9 {
		t.Fatalf("the standby log has %d changes the standby made, want 9: %v", len(cascades), cascades)
	}
	validRecords(t, e)
	if done, _ := p.applier.exited(); done {
		t.Fatal("the storage-applier stopped")
	}
}
