package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// session runs statements on one connection of db, so that session
// settings (binlog_format, binlog_row_image) hold for the ones after them,
// then closes it: its settings, or a prepared XA transaction, go with it.
func session(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer func() { _ = conn.Raw(func(any) error { return driver.ErrBadConn }) }()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// standbyCount is the number of rows of a standby table matching where,
// -1 while the table is not there.
func standbyCount(t *testing.T, e *testenv.Env, table, where string) int {
	t.Helper()
	var n int
	err := e.Standby.QueryRow("SELECT COUNT(*) FROM " + e.DB + "." + table + " WHERE " + where).Scan(&n)
	if mysql.ErrorNumber(err) == 1146 || mysql.ErrorNumber(err) == 1049 {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// What a session may write that lockstep cannot reproduce exactly stops the
// producer for good, with an error naming the GTID, the table, what it
// found and what to change; what came before is carried, nothing of the
// refused transaction or after it is.
func TestShapesTheProducerRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		stmts func(db string) []string
		want  []string
		only  mysql.Flavor // "" for both
	}{
		{"binlog_row_image MINIMAL", func(db string) []string {
			return []string{"SET SESSION binlog_row_image=MINIMAL", "UPDATE " + db + ".users SET name='min' WHERE id=1"}
		}, []string{"partial row image", "leaves out", "binlog_row_image=FULL"}, ""},
		{"binlog_row_image NOBLOB", func(db string) []string {
			return []string{"SET SESSION binlog_row_image=NOBLOB", "UPDATE " + db + ".items SET price=2 WHERE id=1"}
		}, []string{"partial row image", "leaves out title", "binlog_row_image=FULL"}, ""},
		{"FULL then MINIMAL in one session", func(db string) []string {
			return []string{"UPDATE " + db + ".users SET name='full' WHERE id=1", "SET SESSION binlog_row_image=MINIMAL", "DELETE FROM " + db + ".users WHERE id=1"}
		}, []string{"partial row image", "DeleteRowsEvent"}, ""},
		{"binlog_format STATEMENT", func(db string) []string {
			return []string{"SET SESSION binlog_format=STATEMENT", "INSERT INTO " + db + ".users VALUES (7, 'st@x', 'st', 1, NULL)"}
		}, []string{"statement-based events", "binlog_format=ROW"}, ""},
		{"binlog_format MIXED", func(db string) []string {
			return []string{"SET SESSION binlog_format=MIXED", "UPDATE " + db + ".users SET balance=balance+1 WHERE id=1"}
		}, []string{"statement-based events", "binlog_format=ROW"}, ""},
		{"statement with user variable and INSERT_ID", func(db string) []string {
			return []string{"SET SESSION binlog_format=STATEMENT", "SET @v = 'uv'", "USE " + db, "INSERT INTO sessions (id, token) VALUES (9, @v)"}
		}, []string{"statement-based events", "INSERT INTO sessions"}, ""},
		{"system-versioned table", func(db string) []string {
			return []string{"CREATE TABLE " + db + ".sv (id INT PRIMARY KEY, a INT) WITH SYSTEM VERSIONING", "INSERT INTO " + db + ".sv VALUES (1, 1)"}
		}, []string{"system-versioned table", "DROP SYSTEM VERSIONING"}, mysql.MariaDB},
		{"RENAME TABLE into a database that is not replicated", func(db string) []string {
			return []string{"CREATE TABLE " + db + ".moved (id INT PRIMARY KEY)", "CREATE DATABASE " + db + "_out",
				"RENAME TABLE " + db + ".moved TO " + db + "_out.moved"}
		}, []string{"RENAME TABLE that spans replicated", "_out) databases", "primary.databases"}, ""},
		{"LOAD DATA, statement-based", func(db string) []string {
			return []string{"SET SESSION binlog_format=STATEMENT", "USE " + db, "LOAD DATA INFILE '" + loadFile(t) + "' INTO TABLE sessions"}
		}, []string{"statement-based events", "LOAD DATA"}, mysql.MariaDB}, // the MySQL under test runs in a root of its own, without the test's file
		{"a partial JSON update", func(db string) []string {
			return []string{"CREATE TABLE " + db + ".j (id INT PRIMARY KEY, js JSON)", `INSERT INTO ` + db + `.j VALUES (1, '{"k": 1, "pad": "` + strings.Repeat("x", 100) + `"}')`,
				"SET SESSION binlog_row_value_options = 'PARTIAL_JSON'", "UPDATE " + db + ".j SET js = JSON_SET(js, '$.k', 2)"}
		}, []string{"PARTIAL_JSON", "column js", "binlog_row_value_options=''"}, mysql.MySQL},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.only != "" {
				e.Only(t, c.only, c.name)
			}
			t.Cleanup(func() { _, _ = e.Primary.Exec("DROP DATABASE IF EXISTS " + e.DB + "_out") })
			p := startPipeline(t, e)
			createTables(t, e)
			testenv.Exec(t, e.Primary,
				"INSERT INTO "+e.DB+".users VALUES (1, 'a@x', 'a', 1, NULL)",
				"INSERT INTO "+e.DB+".items VALUES (1, 'blob', 1, NULL)")
			testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (1, 'before')")
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				return standbyCount(t, e, "sessions", "id = 1") == 1, "the transaction before the refused one is not on the standby"
			})
			var gtid string
			session(t, e.Primary, c.stmts(e.DB)...)
			gtid = lastGTID(t, e)
			testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (2, 'after')")
			log := p.producer.waitExit(30 * time.Second)
			mustContain(t, log, append(c.want, "refused", "in GTID "+gtid, e.DB+".", "nothing of this transaction or after it was published")...)
			if n := standbyCount(t, e, "sessions", "id = 2"); n > 0 {
				t.Fatalf("the transaction after the refused one reached the standby")
			}
		})
	}
}

// loadFile is a file LOAD DATA reads on the primary (same machine).
func loadFile(t *testing.T) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("lockstep-load-%d.tsv", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte("20\tloaded\n21\tloaded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// Statement-based writes to a database lockstep does not replicate change
// nothing it carries: they are ignored, and the stream goes on.
func TestStatementsOutsideTheReplicatedDatabasesAreIgnored(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	other := e.DB + "_other"
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+other, "CREATE TABLE "+other+".t (id INT PRIMARY KEY)")
	t.Cleanup(func() { _, _ = e.Primary.Exec("DROP DATABASE IF EXISTS " + other) })
	session(t, e.Primary, "SET SESSION binlog_format=STATEMENT", "USE "+other, "INSERT INTO t VALUES (1)", "INSERT INTO "+other+".t VALUES (2)")
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (1, 'after')")
	consistent(t, e, 30*time.Second)
}

// XA transactions: rows reach the standby at XA COMMIT, in its place, never
// at XA ROLLBACK; a pending one holds nothing else back, and survives a
// producer killed while it is pending. XA COMMIT ... ONE PHASE is a plain
// transaction.
func TestXATransactionsAreCarriedAtTheirOutcome(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	prepare := func(xid string, id int) {
		session(t, e.Primary, "XA START '"+xid+"'",
			fmt.Sprintf("INSERT INTO %s.users VALUES (%d, 'xa%d@x', '%s', 1, NULL)", e.DB, id, id, xid),
			"XA END '"+xid+"'", "XA PREPARE '"+xid+"'")
	}
	keep, drop := e.DB+"-keep", e.DB+"-drop"
	t.Cleanup(func() { _, _ = e.Primary.Exec("XA ROLLBACK '" + drop + "'") })
	prepare(keep, 1)
	prepare(drop, 2)
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (1, 'while pending')")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return standbyCount(t, e, "sessions", "id = 1") == 1, "a transaction committed while XA transactions are pending is held back"
	})
	if n := standbyCount(t, e, "users", "id IN (1, 2)"); n > 0 {
		t.Fatalf("%d rows of prepared, uncommitted XA transactions are on the standby", n)
	}
	var stages []status.Stage
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var err error
		stages, err = status.Report(context.Background(), e.Cfg)
		return err == nil, fmt.Sprint(err) // the cache group may not have committed yet
	})
	if !strings.Contains(stages[0].State, "XA transactions prepared and not yet committed") {
		t.Errorf("status of the %s does not show the pending XA transactions: %q", stages[0].Name, stages[0].State)
	}

	// Killed while they are pending: the restarted producer reads their
	// rows again and publishes nothing twice.
	p.producer.stop(syscall.SIGKILL)
	p.producer = start(t, p.cfgPath, "producer")
	p.producer.waitLog("XA transactions were pending")
	testenv.Exec(t, e.Primary, "XA COMMIT '"+keep+"'", "XA ROLLBACK '"+drop+"'")
	one := e.DB + "-one"
	session(t, e.Primary, "XA START '"+one+"'", "INSERT INTO "+e.DB+".users VALUES (3, 'one@x', 'one', 1, NULL)", "XA END '"+one+"'", "XA COMMIT '"+one+"' ONE PHASE")
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (2, 'after')")
	consistent(t, e, 60*time.Second)
	if n := standbyCount(t, e, "users", "id IN (1, 3)"); n != 2 {
		t.Fatalf("%d of the 2 committed XA transactions' rows are on the standby", n)
	}
	if n := standbyCount(t, e, "users", "id = 2"); n != 0 {
		t.Fatalf("the rolled-back XA transaction's row is on the standby")
	}
	var dup int
	for _, r := range records(t, e, e.Cfg.Kafka.PrimaryTopic) {
		if strings.Contains(string(r.Value), `"xa1@x"`) {
			dup++
		}
	}
	if dup != 1 {
		t.Fatalf("the committed XA row is %d times in the primary log, want once", dup)
	}
}

// The rest of what applications and tools write, carried exactly: CREATE
// TABLE ... SELECT, temporary tables feeding INSERT ... SELECT, MyISAM and
// Aria writes, TRUNCATE and DROP of several tables, savepoints rolled back
// (with and without non-transactional changes in the transaction), a big
// INSERT ... SELECT spanning many rows events, ALTER TABLE ... INPLACE
// under writes, compressed binlog events (MySQL's
// binlog_transaction_compression, MariaDB's log_bin_compress).
func TestOtherShapesAreCarried(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+".seq (n INT PRIMARY KEY)",
		"INSERT INTO "+db+".seq SELECT seq FROM "+e.Seq(20000),
		"CREATE TABLE "+db+".copy (PRIMARY KEY (n)) AS SELECT n, CONCAT('row ', n) AS label FROM "+db+".seq WHERE n <= 100",
		"CREATE TABLE "+db+".my (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
		"CREATE TABLE "+db+".ar (id INT PRIMARY KEY, v INT) ENGINE="+map[mysql.Flavor]string{mysql.MariaDB: "Aria", mysql.MySQL: "MEMORY"}[e.Flavor],
		"INSERT INTO "+db+".my VALUES (1, 1), (2, 2)",
		"INSERT INTO "+db+".ar VALUES (1, 1)",
		"UPDATE "+db+".my SET v = 10 WHERE id = 1",
		"CREATE TABLE "+db+".gone1 (id INT PRIMARY KEY)",
		"CREATE TABLE "+db+".gone2 (id INT PRIMARY KEY)",
		"INSERT INTO "+db+".gone1 VALUES (1)",
		"DROP TABLE "+db+".gone1, "+db+".gone2",
		"CREATE TABLE "+db+".trunc1 (id INT PRIMARY KEY)",
		"INSERT INTO "+db+".trunc1 VALUES (1), (2)",
		"TRUNCATE TABLE "+db+".trunc1",
	)
	session(t, e.Primary,
		"CREATE TEMPORARY TABLE "+db+".tmp (id INT)",
		"INSERT INTO "+db+".tmp VALUES (100), (101)",
		"INSERT INTO "+db+".sessions SELECT id, 'from tmp' FROM "+db+".tmp",
		"DROP TEMPORARY TABLE "+db+".tmp")
	session(t, e.Primary,
		"BEGIN", "INSERT INTO "+db+".sessions VALUES (1, 'kept')", "SAVEPOINT s1",
		"INSERT INTO "+db+".sessions VALUES (2, 'undone')", "ROLLBACK TO SAVEPOINT s1", "COMMIT")
	// A non-transactional change inside the transaction (MySQL with GTIDs
	// refuses such a transaction).
	mixed := "INSERT INTO " + db + ".my VALUES (3, 3)"
	if e.Flavor == mysql.MySQL {
		mixed = "DO 0"
	}
	session(t, e.Primary,
		"BEGIN", "INSERT INTO "+db+".sessions VALUES (3, 'kept')", "SAVEPOINT s2",
		"INSERT INTO "+db+".sessions VALUES (4, 'undone')", mixed,
		"UPDATE "+db+".sessions SET token = 'undone' WHERE id = 3", "ROLLBACK TO SAVEPOINT s2",
		"INSERT INTO "+db+".sessions VALUES (5, 'kept after')", "COMMIT")
	kept := "id IN (1, 3, 5, 100, 101)"
	if e.Flavor == mysql.MySQL {
		// MySQL's own: a tagged GTID (8.3+), and a transaction compressed
		// into one TRANSACTION_PAYLOAD event.
		session(t, e.Primary, "SET gtid_next = 'AUTOMATIC:lockstep_tag'", "INSERT INTO "+db+".sessions VALUES (6, 'tagged')", "SET gtid_next = 'AUTOMATIC'")
		session(t, e.Primary, "SET SESSION binlog_transaction_compression = ON", "BEGIN",
			"INSERT INTO "+db+".sessions VALUES (7, 'compressed'), (8, 'compressed')", "UPDATE "+db+".sessions SET token = 'compressed too' WHERE id = 1", "COMMIT")
		kept = "id IN (1, 3, 5, 6, 7, 8, 100, 101)"
	} else {
		// MariaDB's own: log_bin_compress writes compressed rows and query
		// events (a global setting: writers of other tests meanwhile get
		// them too, which they must carry as well).
		var was, minLen string
		if err := e.Primary.QueryRow("SELECT @@GLOBAL.log_bin_compress, @@GLOBAL.log_bin_compress_min_len").Scan(&was, &minLen); err != nil {
			t.Fatal(err)
		}
		restore := func() {
			testenv.Exec(t, e.Primary, "SET GLOBAL log_bin_compress = "+was, "SET GLOBAL log_bin_compress_min_len = "+minLen)
		}
		t.Cleanup(restore)
		testenv.Exec(t, e.Primary, "SET GLOBAL log_bin_compress = ON", "SET GLOBAL log_bin_compress_min_len = 10")
		session(t, e.Primary, "BEGIN", "INSERT INTO "+db+".sessions VALUES (7, 'compressed'), (8, 'compressed')",
			"UPDATE "+db+".sessions SET token = 'compressed too' WHERE id = 1", "DELETE FROM "+db+".sessions WHERE id = 8", "COMMIT")
		restore()
		kept = "id IN (1, 3, 5, 7, 100, 101)"
	}
	// A big INSERT ... SELECT: one transaction of many rows events.
	testenv.Exec(t, e.Primary, "INSERT INTO "+db+".items SELECT n, REPEAT('x', 200), n / 3, NULL FROM "+db+".seq")
	// ALTER TABLE ... ALGORITHM=INPLACE while another connection writes.
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			_, err = e.Primary.Exec(fmt.Sprintf("UPDATE %s.items SET price = price + 1 WHERE id = %d", db, i%50+1))
		}
		done <- err
	}()
	testenv.Exec(t, e.Primary, "ALTER TABLE "+db+".items ADD COLUMN note VARCHAR(20) DEFAULT 'n', ALGORITHM=INPLACE, LOCK=NONE")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	consistent(t, e, 90*time.Second)
	for where, want := range map[string]int{kept: strings.Count(kept, ",") + 1, "id IN (2, 4)": 0, "token = 'undone'": 0} {
		if n := standbyCount(t, e, "sessions", where); n != want {
			t.Errorf("standby sessions where %s: %d rows, want %d", where, n, want)
		}
	}
	if done, _ := p.producer.exited(); done {
		t.Fatal("the producer stopped")
	}
}

// A standby that diverged (the key a primary transaction inserts is there
// already) stops the storage-applier for good with the row named, also
// when that transaction is a single row applied carefully.
func TestDivergedStandbyStopsTheApplier(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (1, 'first')")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return standbyCount(t, e, "sessions", "id = 1") == 1, "the first row is not on the standby"
	})
	testenv.Exec(t, e.Standby, "INSERT INTO "+e.DB+".sessions VALUES (2, 'by hand')")
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (2, 'primary')")
	log := p.applier.waitExit(60 * time.Second)
	mustContain(t, log, "Duplicate entry '2'", "sessions", "diverged", "nothing of the transaction was applied")
}

// lastGTID is the GTID of the primary's last untagged transaction.
func lastGTID(t *testing.T, e *testenv.Env) string {
	t.Helper()
	pos, err := e.Flavor.BinlogGTIDs(context.Background(), e.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if e.Flavor != mysql.MySQL {
		// the last GTID of the primary's own domain (TestSeveralGTIDDomains
		// writes in others)
		var domain string
		if err := e.Primary.QueryRow("SELECT @@GLOBAL.gtid_domain_id").Scan(&domain); err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split(pos, ",") {
			if strings.HasPrefix(part, domain+"-") {
				return part
			}
		}
		t.Fatalf("no GTID of domain %s in the primary's position %s", domain, pos)
	}
	var uuid string
	if err := e.Primary.QueryRow("SELECT @@server_uuid").Scan(&uuid); err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(pos, ",") { // uuid:1-N[:M-K][:tag:...]
		if src, rest, _ := strings.Cut(part, ":"); src == uuid {
			last := ""
			for _, iv := range strings.Split(rest, ":") {
				if iv == "" || iv[0] < '0' || iv[0] > '9' {
					break // a tag's intervals follow
				}
				last = iv[strings.LastIndex(iv, "-")+1:]
			}
			return uuid + ":" + last
		}
	}
	t.Fatalf("no GTID of the primary %s in %s", uuid, pos)
	return ""
}
