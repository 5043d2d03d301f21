package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/internal/testtool"
	"github.com/lockstep-dr/lockstep/schemas"
)

// writeUsers changes rows of the users table until stop is closed, as an
// application does: updates, inserts, deletes and REPLACE over rows that
// exist. With a mirror table, each change is then copied there as gh-ost
// replays the binlog into its shadow table. It returns how many statements
// it ran. Calling the function it returns stops it and gives the number of
// statements it ran.
func writeUsers(t *testing.T, e *testenv.Env, from int, mirror string) func() int64 {
	t.Helper()
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var once sync.Once
	done := func() int64 {
		once.Do(func() { close(stop) })
		wg.Wait()
		return n.Load()
	}
	t.Cleanup(func() { done() })
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
				id = next
				q = fmt.Sprintf("INSERT INTO %s.users (id, email, name, balance) VALUES (%d, 'n%d@x', 'new', 1)", e.DB, next, next)
			case 2:
				q = fmt.Sprintf("DELETE FROM %s.users WHERE id = %d", e.DB, id)
			default:
				q = fmt.Sprintf("REPLACE INTO %s.users (id, email, name, balance) VALUES (%d, 'r%d@x', 'replaced', 2)", e.DB, id, id)
			}
			if mirror != "" {
				cols := "id, email, name, balance, avatar"
				q += fmt.Sprintf("; REPLACE INTO %s.%s (%s) SELECT %s FROM %s.users WHERE id = %d", e.DB, mirror, cols, cols, e.DB, id) +
					fmt.Sprintf("; DELETE FROM %s.%s WHERE id = %d AND NOT EXISTS (SELECT 1 FROM %s.users WHERE id = %d)", e.DB, mirror, id, e.DB, id)
			}
			if _, err := e.Primary.ExecContext(context.Background(), q); err != nil && !strings.Contains(err.Error(), "Duplicate entry") {
				t.Errorf("%s: %v", q, err)
				return
			}
			n.Add(1)
		}
	}()
	return done
}

// seedUsers fills the users table with n rows.
func seedUsers(t *testing.T, e *testenv.Env, n int) {
	t.Helper()
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users (id, email, name, balance) SELECT seq, CONCAT('u', seq, '@x'), 'seed', seq FROM %s", e.DB, e.Seq(n)))
}

// pt-online-schema-change on a cached table under writes: the shadow table
// filled by triggers and a chunked copy, the atomic swap and the drop reach
// the standby and the cache as they happened on the primary.
func TestOnlineSchemaChangeWithPerconaToolkit(t *testing.T) {
	tool := testtool.Path(t, "pt-online-schema-change", "percona-toolkit")
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".users ADD UNIQUE KEY (email)")
	seedUsers(t, e, 3000)
	stopWriting := writeUsers(t, e, 3000, "")
	host, port, _ := strings.Cut(e.Cfg.Primary.Address, ":")
	dsn := fmt.Sprintf("h=%s,P=%s,u=%s,D=%s,t=users", host, port, e.Cfg.Primary.User, e.DB)
	if e.Cfg.Primary.Password != "" {
		dsn += ",p=" + e.Cfg.Primary.Password
	}
	out, err := exec.Command(tool, "--alter", "ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x'", dsn,
		"--execute", "--chunk-size=200", "--chunk-time=0", "--recursion-method=none", "--no-check-alter").CombinedOutput()
	wrote := stopWriting()
	if err != nil {
		t.Fatalf("pt-online-schema-change: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Successfully altered") {
		t.Fatalf("pt-online-schema-change did not finish:\n%s", out)
	}
	t.Logf("%d statements written during the change", wrote)
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

// gh-ost's pattern on a cached table under writes, as it shows in the
// binlog (gh-ost itself is not packaged here): a shadow table altered, then
// filled by a chunked copy and by the table's changes replayed into it, an
// atomic RENAME TABLE swap, the old table dropped.
func TestOnlineSchemaChangeAsGhostDoesIt(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary, "ALTER TABLE "+db+".users ADD UNIQUE KEY (email)")
	seedUsers(t, e, 3000)
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+"._users_gho LIKE "+db+".users",
		"ALTER TABLE "+db+"._users_gho ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x'",
		"CREATE TABLE "+db+"._users_ghc (id BIGINT PRIMARY KEY, hint VARCHAR(64), value TEXT)",
	)
	stopWriting := writeUsers(t, e, 3000, "_users_gho")
	cols := "id, email, name, balance, avatar"
	for lo := 1; lo <= 3200; lo += 200 {
		testenv.Exec(t, e.Primary,
			fmt.Sprintf("INSERT IGNORE INTO %s._users_gho (%s) SELECT %s FROM %s.users FORCE INDEX (PRIMARY) WHERE id BETWEEN %d AND %d LOCK IN SHARE MODE", db, cols, cols, db, lo, lo+199),
			fmt.Sprintf("REPLACE INTO %s._users_ghc VALUES (1, 'copy', '%d')", db, lo))
	}
	time.Sleep(300 * time.Millisecond) // more changes replayed after the copy
	wrote := stopWriting()
	testenv.Exec(t, e.Primary,
		"INSERT IGNORE INTO "+db+"._users_gho ("+cols+") SELECT "+cols+" FROM "+db+".users", // what the copy missed
		"RENAME TABLE "+db+".users TO "+db+"._users_del, "+db+"._users_gho TO "+db+".users",
		"DROP TABLE "+db+"._users_del",
		"DROP TABLE "+db+"._users_ghc",
		"UPDATE "+db+".users SET note = 'after' WHERE id <= 10",
	)
	t.Logf("%d statements written during the change", wrote)
	consistent(t, e, 90*time.Second)
	for _, s := range []*proc{p.applier, p.cacheApplier} {
		if done, _ := s.exited(); done {
			t.Fatalf("%s stopped", s.name)
		}
	}
}

// Foreign keys three levels deep, with ON DELETE and ON UPDATE actions, on
// cached tables: the standby runs the actions the primary ran (which the
// binlog does not carry) and the cache drops or rewrites the keys of every
// row they changed; a key that went never comes back. Also when the
// storage-applier is killed between the standby's COMMIT and the
// publication of what it changed.
func TestForeignKeyCascadesReachStandbyAndCache(t *testing.T) {
	t.Run("running", func(t *testing.T) { cascades(t, false) })
	t.Run("killed after the standby commit", func(t *testing.T) { cascades(t, true) })
}

func cascades(t *testing.T, crash bool) {
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

	if crash {
		p.applier.stop(syscall.SIGTERM)
		p.applier = startEnv(t, p.cfgPath, "storage-applier", []string{"LOCKSTEP_CRASHPOINT=" + crashpoint.ApplierCommitted + ":1"})
	}
	// The application's session, with foreign_key_checks on (lockstep's
	// own test connections have it off).
	session(t, e.Primary, "SET SESSION foreign_key_checks = 1",
		"DELETE FROM "+db+".users WHERE id = 1",        // orders 10, 11 -> lines 100-102; notes 1000, 1002 set null
		"UPDATE "+db+".users SET id = 20 WHERE id = 2", // order 12's user_id -> 20
		"DELETE FROM "+db+".orders WHERE id = 13",      // line 104
	)
	if crash {
		p.applier.waitKilled(60 * time.Second)
		p.applier = start(t, p.cfgPath, "storage-applier")
	}
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
	// order 12 (user 2's new id); line 104 (order 13). MySQL 9 enforces
	// foreign keys above the storage engine and logs what they change as
	// rows of the transaction: the standby applies those and cascades
	// nothing itself.
	want := 9
	if e.Flavor == mysql.MySQL {
		want = 0
	}
	if len(cascades) != want {
		t.Fatalf("the standby log has %d changes the standby made, want %d: %v", len(cascades), want, cascades)
	}
	validRecords(t, e)
	if done, _ := p.applier.exited(); done {
		t.Fatal("the storage-applier stopped")
	}
}

// A column with ON UPDATE CURRENT_TIMESTAMP keeps the primary's value on
// the standby also when an update left it as it was (set to itself), as a
// native replica writes the whole after image: the standby's own ON UPDATE
// must not give it the standby's clock.
func TestOnUpdateColumnsKeepThePrimarysValue(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+".stamped (id INT PRIMARY KEY, v INT, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
		"INSERT INTO "+db+".stamped (id, v, at) VALUES (1, 1, '2020-01-01 00:00:00.000001')",
		"UPDATE "+db+".stamped SET v = 2, at = at WHERE id = 1",
	)
	consistent(t, e, 30*time.Second)
}

// Rows written by a primary session with foreign_key_checks=0 or
// check_constraint_checks=0 are applied the same way: an orphan row goes
// in, a parent's delete cascades nowhere, a row a CHECK would refuse goes
// in, as on a native replica.
func TestPrimarySessionChecksAreKept(t *testing.T) {
	e := newEnv(t)
	e.Only(t, mysql.MariaDB, "check_constraint_checks")
	p := startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+".parent (id INT PRIMARY KEY)",
		"CREATE TABLE "+db+".child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES "+db+".parent (id) ON DELETE CASCADE)",
		"CREATE TABLE "+db+".checked (id INT PRIMARY KEY, v INT, CHECK (v > 0))",
	)
	session(t, e.Primary, "SET SESSION foreign_key_checks = 0",
		"INSERT INTO "+db+".child VALUES (1, 99)", // no parent 99
		"INSERT INTO "+db+".parent VALUES (1)",
		"INSERT INTO "+db+".child VALUES (2, 1)",
		"DELETE FROM "+db+".parent WHERE id = 1", // no cascade with the checks off
		"SET SESSION check_constraint_checks = 0",
		"INSERT INTO "+db+".checked VALUES (1, -5)",
	)
	session(t, e.Primary, "SET SESSION foreign_key_checks = 1", "INSERT INTO "+db+".checked VALUES (2, 5)")
	consistent(t, e, 30*time.Second)
	if n := standbyCount(t, e, "child", "1=1"); n != 2 {
		t.Fatalf("standby child has %d rows, want 2", n)
	}
	if done, _ := p.applier.exited(); done {
		t.Fatal("the storage-applier stopped")
	}
}
