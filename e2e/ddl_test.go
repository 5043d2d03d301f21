package e2e

import (
	"database/sql"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Schema changes travel in commit order with the rows around them. The
// producer is stopped while the schema changes, so it reads rows written
// before and after each change later: it maps each through the columns the
// binlog says it was written with. The cache-applier brings the keys of a
// changed table in line (a dropped column leaves no field behind) and
// evicts those of a dropped table.
func TestDDLInOrderWhileTheProducerLags(t *testing.T) {
	e := newEnv(t)
	other := e.DB + "_other" // a second replicated database, dropped whole
	e.Cfg.Primary.Databases = append(e.Cfg.Primary.Databases, other)
	t.Cleanup(func() {
		for _, db := range []*sql.DB{e.Primary, e.Standby} {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + other)
		}
	})
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: e.DB + ".t", Keys: []string{"t:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: e.DB + ".gone", Keys: []string{"gone:{id}"}, Action: "refresh", Format: "json"},
		config.Rule{Table: other + ".o", Keys: []string{"o:{id}"}, Action: "refresh", Format: "hash"},
	)
	p := startPipeline(t, e)
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".t (id INT PRIMARY KEY, a INT, b VARCHAR(20))",
		"CREATE TABLE "+e.DB+".gone (id INT PRIMARY KEY)",
		"INSERT INTO "+e.DB+".t VALUES (1, 10, 'one'), (2, 20, 'two'), (3, 30, 'three')",
		"INSERT INTO "+e.DB+".gone VALUES (1), (2)",
		"CREATE DATABASE "+other,
		"CREATE TABLE "+other+".o (id INT PRIMARY KEY)",
		"INSERT INTO "+other+".o VALUES (1)",
	)
	consistent(t, e, 60*time.Second)
	if !exists(t, e, "gone:1") || !exists(t, e, "o:1") || hget(t, e, "t:1", "a") != "10" {
		t.Fatal("the cache does not hold the rows before the schema changes")
	}

	p.producer.stop(syscall.SIGTERM)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+db+".t VALUES (4, 40, 'four')",
		"ALTER TABLE "+db+".t ADD COLUMN c VARCHAR(10) DEFAULT 'new'",
		"INSERT INTO "+db+".t VALUES (5, 50, 'five', 'c5')",
		"UPDATE "+db+".t SET c = 'x' WHERE id = 1",
		"ALTER TABLE "+db+".t DROP COLUMN a",
		"INSERT INTO "+db+".t VALUES (6, 'six', 'c6')",
		"ALTER TABLE "+db+".t MODIFY b VARCHAR(200) NOT NULL",
		"CREATE INDEX ib ON "+db+".t (b)",
		"UPDATE "+db+".t SET b = REPEAT('b', 150) WHERE id = 2",
		"CREATE TABLE "+db+".u (id INT PRIMARY KEY, v TEXT)",
		"INSERT INTO "+db+".u VALUES (1, 'u')",
		"RENAME TABLE "+db+".u TO "+db+".u2",
		"INSERT INTO "+db+".u2 VALUES (2, 'u2')",
		"TRUNCATE TABLE "+db+".u2",
		"INSERT INTO "+db+".u2 VALUES (3, 'after truncate')",
		"DROP TABLE "+db+".gone",
		"DROP DATABASE "+other,
	)
	p.producer = start(t, p.cfgPath, "producer")
	consistent(t, e, 60*time.Second)
	if got := hget(t, e, "t:6", "c"); got != "c6" {
		t.Errorf("t:6 field c = %q, want c6", got)
	}
	if hget(t, e, "t:1", "a") != "" {
		t.Error("t:1 still has the dropped column a in the cache")
	}
	if exists(t, e, "gone:1") || exists(t, e, "o:1") {
		t.Error("a key of a dropped table or database is still in the cache")
	}
	var n int
	if err := e.Standby.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", other).Scan(&n); err != nil || n != 0 {
		t.Errorf("the dropped database is still on the standby (%d, %v)", n, err)
	}
	p.cacheApplier.waitLog("DDL on a cached table: its keys brought in line with the standby")
	if n := testenv.Count(t, e.Standby, db+".u2"); n != 1 {
		t.Errorf("standby u2 has %d rows, want 1", n)
	}
	var cols string
	if err := e.Standby.QueryRow("SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'", db).Scan(&cols); err != nil || !strings.EqualFold(cols, "id,b,c") {
		t.Errorf("standby t columns %q (%v), want id,b,c", cols, err)
	}
}

// A primary whose binlog carries no column names (binlog_row_metadata =
// MINIMAL): the producer says so at start, carries rows through the
// primary's schema (unsigned, ENUM, SET, latin1 and binary columns included),
// and stops, naming the table, when a lagging producer meets rows with
// another column count than the table has now.
func TestPrimaryWithoutRowMetadata(t *testing.T) {
	e := newEnv(t)
	testenv.Exec(t, e.Primary, "SET GLOBAL binlog_row_metadata = 'MINIMAL'")
	t.Cleanup(func() { _, _ = e.Primary.Exec("SET GLOBAL binlog_row_metadata = 'FULL'") })
	p := startPipeline(t, e)
	p.producer.waitLog("binlog_row_metadata is MINIMAL, not FULL")
	db := e.DB
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+db,
		"CREATE TABLE "+db+".m (id BIGINT UNSIGNED PRIMARY KEY, n INT UNSIGNED, e ENUM('a','b''c'), s SET('x','y'), l VARCHAR(10) CHARACTER SET latin1, v VARBINARY(4), bn BINARY(3))",
		"INSERT INTO "+db+".m VALUES (18446744073709551615, 4294967295, 'b''c', 'x,y', 'café', X'00FF', X'01'), (1, 0, 'a', '', 'Ÿ', X'', X'')",
		"UPDATE "+db+".m SET e = 'a', s = 'y', l = 'naïve' WHERE id = 1",
		"DELETE FROM "+db+".m WHERE n = 0",
	)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.Standby, db+".m")
		return n == 1, "standby rows of m: want 1 (after the delete)"
	})
	consistent(t, e, 30*time.Second)

	p.producer.stop(syscall.SIGTERM)
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+db+".m (id) VALUES (7)",
		"ALTER TABLE "+db+".m ADD COLUMN extra INT",
	)
	p.producer = start(t, p.cfgPath, "producer")
	mustContain(t, p.producer.waitExit(60*time.Second), "binlog rows of "+db+".m", "have 7 columns, the table has 8 now", "set binlog_row_metadata=FULL")
}

// A schema change that removes a column a cache rule's key needs stops the
// cache-applier with an error that names the rule, the column and the fix.
func TestDDLThatBreaksACacheRuleStopsTheCacheApplier(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules, config.Rule{Table: e.DB + ".k", Keys: []string{"k:{email}"}, Action: "refresh", Format: "hash"})
	p := startPipeline(t, e)
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".k (id INT PRIMARY KEY, email VARCHAR(50) UNIQUE)",
		"INSERT INTO "+e.DB+".k VALUES (1, 'a@b')",
	)
	consistent(t, e, 60*time.Second)
	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".k DROP COLUMN email")
	mustContain(t, p.cacheApplier.waitExit(60*time.Second), "ALTER TABLE "+e.DB+".k DROP COLUMN email", `names column \"email\", which the table does not have`, "update cache.rules")
}
