package e2e

import (
	"database/sql"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Every schema object the primary's DDL creates reaches the standby: a
// trigger writing an audit table (which the standby does not run again
// while lockstep applies), a view, a procedure, a function, a sequence in
// use, an event (held disabled on the standby, enabled by failover). After
// failover the application's queries work on the promoted standby with
// the primary's results, and the trigger fires for it.
func TestSchemaObjectsReachTheStandby(t *testing.T) {
	e := newEnv(t)
	sequences := e.Flavor == mysql.MariaDB // MySQL has none
	db := e.DB
	app := db + "_app"
	e.Cfg.Primary.Accounts = []string{app + "@%"}
	for _, conn := range []*sql.DB{e.Primary, e.Standby} {
		t.Cleanup(func() { _, _ = conn.Exec("DROP USER IF EXISTS '" + app + "'@'%'") })
	}
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary,
		"CREATE TABLE "+db+".audit (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, what VARCHAR(20))",
		"CREATE DEFINER=CURRENT_USER TRIGGER "+db+".users_audit AFTER INSERT ON "+db+".users FOR EACH ROW INSERT INTO "+db+".audit (user_id, what) VALUES (NEW.id, 'insert')",
		"CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW "+db+".rich AS SELECT id, name, balance FROM "+db+".users WHERE balance > 100",
		"CREATE PROCEDURE "+db+".raise(IN uid INT) BEGIN UPDATE "+db+".users SET balance = balance + 1000 WHERE id = uid; END",
		"CREATE FUNCTION "+db+".doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
		"CREATE EVENT "+db+".tick ON SCHEDULE EVERY 1 DAY DO UPDATE "+db+".sessions SET token = 'tick'",
	)
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+db+".users (id, email, name, balance) VALUES (1, 'a@x', 'Ada', 10), (2, 'b@x', 'Bob', 20)",
		"CALL "+db+".raise(1)",
		// a definer account that exists on neither side: created with a note
		"CREATE DEFINER='"+db+"_nobody'@'%' VIEW "+db+".orphan AS SELECT 1 AS x",
		// ALTER and DROP of objects too
		"CREATE VIEW "+db+".gone AS SELECT 1 AS x",
		"DROP VIEW "+db+".gone",
		"CREATE PROCEDURE "+db+".gone() SELECT 1",
		"DROP PROCEDURE "+db+".gone",
		"ALTER EVENT "+db+".tick ON SCHEDULE EVERY 2 DAY",
		// the application's account
		"CREATE USER '"+app+"'@'%' IDENTIFIED BY 'pw-of-app'",
		"GRANT SELECT, INSERT, UPDATE, EXECUTE ON "+db+".* TO '"+app+"'@'%'",
	)
	var handedOut int64
	if sequences {
		testenv.Exec(t, e.Primary, "CREATE SEQUENCE "+db+".ids START WITH 100 CACHE 10", "ALTER SEQUENCE "+db+".ids INCREMENT BY 1")
		for range 3 {
			if err := e.Primary.QueryRow("SELECT NEXTVAL(" + db + ".ids)").Scan(&handedOut); err != nil {
				t.Fatal(err)
			}
		}
	}
	consistent(t, e, 60*time.Second) // the audit table too: two rows, not four
	if n := standbyCount(t, e, "audit", "1=1"); n != 2 {
		t.Fatalf("standby audit has %d rows, want 2: the standby's trigger ran again", n)
	}
	objects := []string{
		"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '" + db + "' AND TRIGGER_NAME = 'users_audit'",
		"SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '" + db + "' AND TABLE_NAME = 'rich'",
		"SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '" + db + "' AND ROUTINE_NAME IN ('raise', 'doubled')",
		"SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '" + db + "' AND EVENT_NAME = 'tick'",
	}
	if sequences {
		objects = append(objects, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+db+"' AND TABLE_NAME = 'ids' AND TABLE_TYPE = 'SEQUENCE'")
	}
	for _, q := range objects {
		var onPrimary, onStandby int
		if err := e.Primary.QueryRow(q).Scan(&onPrimary); err != nil {
			t.Fatal(err)
		}
		if err := e.Standby.QueryRow(q).Scan(&onStandby); err != nil {
			t.Fatal(err)
		}
		if onPrimary == 0 || onStandby != onPrimary {
			t.Fatalf("%s: primary %d, standby %d", q, onPrimary, onStandby)
		}
	}
	verifySchema := func(when string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "verify", "schema", "--config", p.cfgPath, "--wait", "0s").CombinedOutput()
		if err != nil || !strings.Contains(string(out), ", 0 differ") {
			t.Fatalf("verify schema %s: %v\n%s", when, err, out)
		}
	}
	verifySchema("before failover")
	// an object the standby has and the primary not is named
	testenv.Exec(t, e.Standby, "CREATE VIEW "+db+".stray AS SELECT 1 AS x")
	if out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "verify", "schema", "--config", p.cfgPath, "--wait", "0s").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "DIFFERENT: view "+db+".stray: not on the primary") {
		t.Fatalf("verify schema with a stray view on the standby: %v\n%s", err, out)
	}
	testenv.Exec(t, e.Standby, "DROP VIEW "+db+".stray")
	var status string
	if err := e.Standby.QueryRow("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = 'tick'", db).Scan(&status); err != nil || (status != "SLAVESIDE_DISABLED" && status != "REPLICA_SIDE_DISABLED") {
		t.Fatalf("the event on the standby: status %q (%v), want SLAVESIDE_DISABLED (MySQL: REPLICA_SIDE_DISABLED)", status, err)
	}
	// answers runs a query on both sides and wants the same answer.
	answers := func(q string) string {
		t.Helper()
		var onPrimary, onStandby string
		if err := e.Primary.QueryRow(q).Scan(&onPrimary); err != nil {
			t.Fatalf("%s on the primary: %v", q, err)
		}
		if err := e.Standby.QueryRow(q).Scan(&onStandby); err != nil {
			t.Fatalf("%s on the standby: %v", q, err)
		}
		if onPrimary != onStandby {
			t.Fatalf("%s: primary %q, standby %q", q, onPrimary, onStandby)
		}
		return onPrimary
	}

	// Failover, then the application on the promoted standby.
	var readOnly string
	if err := e.Standby.QueryRow("SELECT @@GLOBAL.read_only").Scan(&readOnly); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.Standby.Exec("SET GLOBAL read_only = " + readOnly) })
	p.producer.stop(syscall.SIGTERM)
	out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "failover", "--config", p.cfgPath, "--wait", "1m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "READY") {
		t.Fatalf("failover: %v\n%s", err, out)
	}
	mustContain(t, string(out), "event "+db+".tick enabled", "schema: ", ", 0 differ")
	verifySchema("after failover")
	if err := e.Standby.QueryRow("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = 'tick'", db).Scan(&status); err != nil || status != "ENABLED" {
		t.Fatalf("the event after failover: status %q (%v), want ENABLED", status, err)
	}
	if got := answers("SELECT GROUP_CONCAT(CONCAT(id, ':', name, ':', balance) ORDER BY id) FROM " + db + ".rich"); got != "1:Ada:1010.00" {
		t.Fatalf("the view answers %q", got)
	}
	if got := answers("SELECT " + db + ".doubled(21)"); got != "42" {
		t.Fatalf("the function answers %q", got)
	}
	// the application, as its own account, logs in to the promoted standby
	asApp := login(t, e.Cfg.Standby.Address, app, "pw-of-app")
	for _, q := range []string{
		"CALL " + db + ".raise(2)",
		"INSERT INTO " + db + ".users (id, email, name, balance) VALUES (3, 'c@x', 'Cy', 1)", // the trigger fires for the application
	} {
		if _, err := asApp.Exec(q); err != nil {
			t.Fatalf("%s as %s on the promoted standby: %v", q, app, err)
		}
	}
	if n := standbyCount(t, e, "audit", "user_id = 3 AND what = 'insert'"); n != 1 {
		t.Fatalf("after failover the trigger wrote %d audit rows for an insert, want 1", n)
	}
	if n := standbyCount(t, e, "rich", "id = 2"); n != 1 {
		t.Fatal("the procedure did not run on the promoted standby")
	}
	var doubled int
	if err := asApp.QueryRow("SELECT " + db + ".doubled(21)").Scan(&doubled); err != nil || doubled != 42 {
		t.Fatalf("the function as %s: %d, %v", app, doubled, err)
	}
	if !sequences {
		return
	}
	var next int64
	if err := asApp.QueryRow("SELECT NEXTVAL(" + db + ".ids)").Scan(&next); err != nil {
		t.Fatal(err)
	}
	if next <= handedOut {
		t.Fatalf("the sequence on the promoted standby gives %d, which the primary handed out already (up to %d)", next, handedOut)
	}
}

// Accounts that primary.accounts names reach the standby (users, a role,
// grants, the default role), with passwords as hashes in the primary log;
// other accounts do not. The application's account logs in to the standby.
func TestNamedAccountsReachTheStandby(t *testing.T) {
	e := newEnv(t)
	app, role, other := e.DB+"_app", e.DB+"_role", e.DB+"_other"
	e.Cfg.Primary.Accounts = []string{app + "@%", role}
	for _, db := range []*sql.DB{e.Primary, e.Standby} {
		t.Cleanup(func() {
			_, _ = db.Exec("DROP USER IF EXISTS '" + app + "'@'%', '" + other + "'@'%'")
			_, _ = db.Exec("DROP ROLE IF EXISTS " + role)
		})
	}
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary,
		"CREATE ROLE "+role,
		"GRANT SELECT ON "+e.DB+".* TO "+role,
		"CREATE USER '"+app+"'@'%' IDENTIFIED BY 'pw-of-app'",
		"GRANT "+role+" TO '"+app+"'@'%'",
		map[mysql.Flavor]string{mysql.MariaDB: "SET DEFAULT ROLE " + role + " FOR '" + app + "'@'%'", mysql.MySQL: "SET DEFAULT ROLE " + role + " TO '" + app + "'@'%'"}[e.Flavor],
		"GRANT INSERT ON "+e.DB+".users TO '"+app+"'@'%'",
		"CREATE USER '"+other+"'@'%' IDENTIFIED BY 'pw-of-other'",
		"INSERT INTO "+e.DB+".users (id, email) VALUES (1, 'a@x')",
	)
	consistent(t, e, 30*time.Second)
	count := func(user string) int {
		var n int
		if err := e.Standby.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", user).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(app) != 1 || count(role) != 1 || count(other) != 0 {
		t.Fatalf("accounts on the standby: %s %d, %s %d, %s %d; want 1, 1, 0", app, count(app), role, count(role), other, count(other))
	}
	out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "verify", "schema", "--config", p.cfgPath, "--wait", "0s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "carried accounts), 0 differ") {
		t.Fatalf("verify schema: %v\n%s", err, out)
	}
	// the application's account, on the standby
	asApp := login(t, e.Cfg.Standby.Address, app, "pw-of-app")
	var n int
	if err := asApp.QueryRow("SELECT COUNT(*) FROM " + e.DB + ".users").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the application's account on the standby: %d rows, %v", n, err)
	}
	for _, kr := range records(t, e, e.Cfg.Kafka.PrimaryTopic) {
		if strings.Contains(string(kr.Value), "pw-of-") {
			t.Fatalf("a password travels as text in the primary log: %s", kr.Value)
		}
	}
}

// login opens a connection pool to a server as a user.
func login(t *testing.T, address, user, password string) *sql.DB {
	t.Helper()
	cfg := mysqldriver.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, "tcp", address
	conn, err := mysqldriver.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}
