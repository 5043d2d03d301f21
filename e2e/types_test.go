package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// typesTable has a column of every type lockstep promises to carry exactly.
const typesTable = `CREATE TABLE %s.types (
	id INT PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
	mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
	bi BIGINT, biu BIGINT UNSIGNED,
	d65 DECIMAL(65,30), d10 DECIMAL(10,0), f FLOAT, dbl DOUBLE,
	b1 BIT(1), b64 BIT(64),
	dt DATE, dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts6 TIMESTAMP(6) NULL,
	tm TIME, tm6 TIME(6), yr YEAR,
	c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4, tx TEXT CHARACTER SET utf8mb4,
	l1 VARCHAR(300) CHARACTER SET latin1, l1t TEXT CHARACTER SET latin1,
	bn BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
	en ENUM('a','b','ü'), st SET('x','y','z'), js JSON,
	gv BIGINT AS (i + 1) VIRTUAL, gs VARCHAR(200) AS (CONCAT(vc, '!')) STORED
)`

// typeColumns are the columns the test writes (all but the generated ones).
const typeColumns = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d65, d10, f, dbl, b1, b64, dt, dt0, dt3, dt6, ts6, tm, tm6, yr, c, vc, tx, l1, l1t, bn, vb, bl, lb, en, st, js"

// hexAll is every byte value 0-255, as a SQL hex literal.
var hexAll = "X'" + allBytes() + "'"

// typeRows are edge values, one row per line, in typeColumns order.
var typeRows = []string{
	// minimums
	`1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	 '-99999999999999999999999999999999999.999999999999999999999999999999', -9999999999, -3.4028234663852886e38, -1.7976931348623157e308,
	 b'0', b'0', '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000000', '1970-01-01 05:30:01.000000',
	 '-838:59:59', '-838:59:59.000000', 1901, '', '', '', '', '', X'00000000', '', '', '', 'a', '', '{}'`,
	// maximums, 4-byte characters, every byte value
	`2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	 '99999999999999999999999999999999999.999999999999999999999999999999', 9999999999, 3.4028234663852886e38, 1.7976931348623157e308,
	 b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', '2038-01-19 08:44:07.999999',
	 '838:59:59', '838:59:59.000000', 2155, '😀中文ab', REPEAT('𝄞', 100), REPEAT('🙂ü', 5000), CONVERT(` + hexAll + ` USING latin1), CONVERT(` + hexAll + ` USING latin1),
	 X'00FF7F80', ` + hexAll + `, REPEAT(` + hexAll + `, 50), REPEAT(` + hexAll + `, 4000), 'ü', 'x,y,z', '{"a": [1, 2.5, "ü", null, true], "b": {"c": "\\u0000 \\" \\\\"}}'`,
	// NULL in every column
	`3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL`,
	// zero dates, negative zero, denormals, small fractions, a TIME fraction below zero
	`4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0.000000000000000000000000000001', 0, CAST('-0' AS DOUBLE), 4.9e-324,
	 b'1', b'1000000000000000000000000000000000000000000000000000000000000001', '0000-00-00', '0000-00-00 00:00:00', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.000001', '0000-00-00 00:00:00',
	 '00:00:00', '-00:00:00.000001', 0, 'trailing  ', ' lead', 'line\nbreak\ttab\\', 'café', 'Ÿ€', X'00000000', X'00', X'0000', X'', '', 'y', '[]'`,
	`5, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, '-0.5', -1, 1.4e-45, -0e0,
	 b'0', b'1', '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00.001', '2000-01-01 00:00:00.100000', '2000-01-01 00:00:00.000001',
	 '-00:00:01', '100:00:00.5', 70, 'x', 'y', 'z', 'a', 'b', X'01', X'FF', X'FE', X'FD', 'b', 'x,z', '"just a string"'`,
}

// TestEveryColumnTypeArrivesExactly writes edge values of every column
// type on a primary whose session time zone and SQL mode differ from the
// standby's, then checks the standby byte for byte (CHECKSUM TABLE and a
// per-column comparison) and the cache against the standby.
func TestEveryColumnTypeArrivesExactly(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: e.DB + ".types", Keys: []string{"types:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: e.DB + ".types", Keys: []string{"typesjson:{id}"}, Action: "refresh", Format: "json"},
	)
	ctx := context.Background()
	// The standby server's own time zone differs from the primary session's:
	// only the stored instant may travel.
	var tz string
	if err := e.Standby.QueryRow("SELECT @@GLOBAL.time_zone").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, e.Standby, "SET GLOBAL time_zone = '-08:00'")
	t.Cleanup(func() { _, _ = e.Standby.Exec("SET GLOBAL time_zone = '" + tz + "'") })

	p := startPipeline(t, e)
	// Every change goes through the stream, none through a rebuild.
	p.cacheApplier.waitLog("cache rebuilt from the standby")
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB, fmt.Sprintf(typesTable, e.DB))
	conn, err := e.Primary.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range []string{"SET time_zone = '+05:30'", "SET sql_mode = ''"} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.200s: %v", q, err)
		}
	}
	table := e.DB + ".types"
	for _, r := range typeRows {
		exec("INSERT INTO " + table + " (" + typeColumns + ") VALUES (" + r + ")")
	}
	// Updates that move values across the edges, and deletes.
	exec("UPDATE " + table + " SET ti = 127, tm6 = '-838:59:58.999999', bl = " + hexAll + ", en = 'b', st = '', js = '{\"k\": 1}', b64 = b'0' WHERE id = 2")
	exec("UPDATE " + table + " SET id = 14, dt = '2000-02-29', ts6 = '2000-02-29 23:59:59.5', vc = NULL, l1 = CONVERT(X'8081FF' USING latin1) WHERE id = 4")
	exec("UPDATE " + table + " SET i = 7 WHERE id = 5") // only a generated column's base
	exec("INSERT INTO " + table + " (" + typeColumns + ") SELECT 6, " + strings.SplitN(typeColumns, ", ", 2)[1] + " FROM " + table + " WHERE id = 2")
	exec("INSERT INTO " + table + " (" + typeColumns + ") SELECT 7, " + strings.SplitN(typeColumns, ", ", 2)[1] + " FROM " + table + " WHERE id = 1")
	exec("DELETE FROM " + table + " WHERE id IN (6, 7)")
	exec("UPDATE " + table + " SET c = 'done' WHERE id = 3")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var c *string
		err := e.Standby.QueryRow("SELECT c FROM " + table + " WHERE id = 3").Scan(&c)
		return err == nil && c != nil && *c == "done", fmt.Sprintf("last update not on the standby yet (%v)", err)
	})
	consistent(t, e, 30*time.Second)
	validRecords(t, e)
	var n int
	if err := e.Standby.QueryRow("SELECT COUNT(*) FROM " + table + " WHERE gv IS NOT NULL AND gs IS NOT NULL").Scan(&n); err != nil || n != 3 {
		t.Errorf("generated columns on the standby: %d rows with both set (err %v), want 3 (ids 1, 2, 5)", n, err)
	}
}

// TestMySQLTypesArriveExactly is the types test for what MySQL has of its
// own: binary JSON (every scalar type, key order, nesting, opaque dates and
// decimals), utf8mb4_0900 collations (a unique key that folds accents),
// invisible columns and a generated invisible primary key, a functional
// index, the TIMESTAMP range's ends, VECTOR.
func TestMySQLTypesArriveExactly(t *testing.T) {
	e := newEnv(t)
	e.Only(t, mysql.MySQL, "MySQL's own types")
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: e.DB + ".my", Keys: []string{"my:{id}"}, Action: "refresh", Format: "hash"})
	p := startPipeline(t, e)
	p.cacheApplier.waitLog("cache rebuilt from the standby")
	db := e.DB
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+db,
		"CREATE TABLE "+db+".my (id INT PRIMARY KEY, js JSON, ai VARCHAR(50) COLLATE utf8mb4_0900_ai_ci UNIQUE, cs VARCHAR(50) COLLATE utf8mb4_0900_as_cs,"+
			" hid INT INVISIBLE, ts TIMESTAMP(6) NULL, INDEX ((LOWER(cs))))")
	testenv.Exec(t, e.Primary, "INSERT INTO "+db+".my (id, js, ai, cs, hid, ts) VALUES "+
		`(1, '{"z": 1, "a": [true, false, null], "d": 1.0, "big": 18446744073709551615, "neg": -9223372036854775808, "e": 1e300, "s": "ü😀\\n\\"q\\""}', 'Café', 'Café', 7, '1970-01-01 00:00:01'),`+
		`(2, '[]', 'cafe2', 'x', NULL, '2038-01-19 03:14:07.999999'),`+
		`(3, '"just a string"', 'ÅÄÖ', 'åäö', -1, NULL),`+
		`(4, 'null', NULL, NULL, 0, '2000-01-01 00:00:00'),`+
		`(5, NULL, 'e', 'E', 1, NULL)`)
	testenv.Exec(t, e.Primary,
		"UPDATE "+db+".my SET js = JSON_OBJECT('date', CAST('2024-02-29' AS DATE), 'dt', CAST('2024-02-29 12:00:00.5' AS DATETIME(1)), 'n', 2) WHERE id = 4",
		"UPDATE "+db+".my SET js = JSON_SET(js, '$.z', 2), hid = 8 WHERE id = 1",
		"UPDATE "+db+".my SET ai = 'ÉÈ' WHERE id = 5",
		// a table whose primary key MySQL generates, invisible
		"SET SESSION sql_generate_invisible_primary_key = ON",
		"CREATE TABLE "+db+".gipk (v VARCHAR(10))",
		"SET SESSION sql_generate_invisible_primary_key = OFF",
		"INSERT INTO "+db+".gipk VALUES ('a'), ('b'), ('a')",
		"DELETE FROM "+db+".gipk WHERE v = 'b'",
		"CREATE TABLE "+db+".vec (id INT PRIMARY KEY, v VECTOR(3))",
		"INSERT INTO "+db+".vec VALUES (1, STRING_TO_VECTOR('[1, 2.5, -3e10]')), (2, NULL)")
	consistent(t, e, 60*time.Second)
	validRecords(t, e)
	var hid, rowID int
	if err := e.Standby.QueryRow("SELECT hid FROM " + db + ".my WHERE id = 1").Scan(&hid); err != nil || hid != 8 {
		t.Errorf("the invisible column on the standby: %d, %v; want 8", hid, err)
	}
	if err := e.Standby.QueryRow("SELECT MAX(my_row_id) FROM " + db + ".gipk").Scan(&rowID); err != nil || rowID != 3 {
		t.Errorf("the generated invisible primary key on the standby: %d, %v; want 3", rowID, err)
	}
}

// TestMariaDBTypesArriveExactly is the types test for MariaDB's own types,
// INET4, INET6 and UUID: the standby gets them exactly. The binlog carries
// their stored bytes where SELECT shows text, so a cache rule that would
// write one is refused, at start and after the DDL that makes a cached
// column one; a rule that leaves them out caches the table.
func TestMariaDBTypesArriveExactly(t *testing.T) {
	e := newEnv(t)
	e.Only(t, mysql.MariaDB, "MariaDB's own types")
	net := e.DB + ".net"
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: net, Keys: []string{"net:{id}"}, Action: "refresh", Format: "hash", Columns: []string{"note"}},
		config.Rule{Table: net, Keys: []string{"netby:{u}"}, Action: "evict"})
	p := startPipeline(t, e)
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB,
		"CREATE TABLE "+net+" (id INT PRIMARY KEY, v4 INET4, v6 INET6, u UUID UNIQUE, note VARCHAR(20))",
		// the standby's own cascade publishes a child's INET6 as the binlog would
		"CREATE TABLE "+e.DB+".netchild (id INT PRIMARY KEY, net_id INT, v6 INET6, FOREIGN KEY (net_id) REFERENCES "+net+" (id) ON DELETE CASCADE)")
	mustContain(t, p.cacheApplier.waitExit(60*time.Second), "cache.rules[4] ("+net+"): column u of "+net+" is of MariaDB's type UUID",
		"leave the column out of the rule's key templates and columns")

	e.Cfg.Cache.Rules = e.Cfg.Cache.Rules[:4]
	p.cfgPath = writeConfig(t, e.Cfg)
	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+net+" VALUES (1, '0.0.0.0', '::', '00000000-0000-0000-0000-000000000000', 'a'),"+
			" (2, '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'b'),"+
			" (3, '10.1.2.3', '::ffff:10.1.2.3', '123e4567-e89b-12d3-a456-426655440000', 'c'),"+
			" (4, NULL, NULL, NULL, NULL)",
		"UPDATE "+net+" SET v6 = '2001:db8::1', u = '6ccd780c-baba-1026-9564-5b8c656024db', note = 'd' WHERE id = 3",
		"INSERT INTO "+e.DB+".netchild VALUES (1, 1, '2001:db8::1'), (2, 2, NULL)",
		// a UUID as the primary key
		"CREATE TABLE "+e.DB+".byuuid (u UUID PRIMARY KEY, n INT)",
		"INSERT INTO "+e.DB+".byuuid VALUES ('6ccd780c-baba-1026-9564-5b8c656024db', 1), ('00000000-0000-0000-0000-000000000001', 2)",
		"UPDATE "+e.DB+".byuuid SET n = 3 WHERE u = '00000000-0000-0000-0000-000000000001'")
	// an application's session: foreign key checks on, as lockstep's own are not
	session(t, e.Primary, "SET SESSION foreign_key_checks = 1", "DELETE FROM "+net+" WHERE id = 1")
	consistent(t, e, 60*time.Second)
	validRecords(t, e)
	if got := e.Redis.HGetAll(context.Background(), e.Cfg.Cache.KeyPrefix+"net:3").Val(); len(got) != 1 || got["note"] != "d" {
		t.Errorf("net:3 in Redis = %q; want only note = d", got)
	}
	var cascaded []string
	err := kafka.ScanTopic(context.Background(), clientOpts(t, e), e.Cfg.Kafka.StandbyTopic, func(_ *kgo.Record, r *schemas.Record) error {
		if r.Standby != nil && r.Standby.Cascade != nil && r.Before["v6"] != nil {
			cascaded = append(cascaded, *r.Before["v6"])
		}
		return nil
	})
	if err != nil || len(cascaded) != 1 || cascaded[0] != "IAENuAAAAAAAAAAAAAAAAQ==" {
		t.Errorf("the standby's cascade published v6 as %q (%v); want once the 16 bytes of 2001:db8::1, base64", cascaded, err)
	}

	// A cached column becomes one of them: refused after the DDL.
	testenv.Exec(t, e.Primary, "ALTER TABLE "+net+" MODIFY note UUID")
	mustContain(t, p.cacheApplier.waitExit(60*time.Second), "after DDL", "column note of "+net+" is of MariaDB's type UUID")
}

// A snapshot reads MariaDB's INET4, INET6 and UUID columns as SQL shows
// them, text; its records carry them as the binlog does, their stored
// bytes, so that the snapshot's rows and the stream's are alike.
func TestSnapshotCarriesMariaDBTypesAsTheBinlogDoes(t *testing.T) {
	e := newEnv(t)
	e.Only(t, mysql.MariaDB, "MariaDB's own types")
	e.Cfg.Cache.Rules = nil
	net := e.DB + ".net"
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB,
		"CREATE TABLE "+net+" (id INT PRIMARY KEY, v4 INET4, v6 INET6, u UUID UNIQUE)",
		"INSERT INTO "+net+" VALUES (1, '10.1.2.3', '::ffff:10.1.2.3', '6ccd780c-baba-1026-9564-5b8c656024db'),"+
			" (2, '255.255.255.255', '::1.2.3.4', 'ffffffff-ffff-ffff-ffff-ffffffffffff'), (3, NULL, NULL, NULL)")
	fromSnapshot(t, e, "storage-applier")
	// the same values again, from the binlog
	testenv.Exec(t, e.Primary, "INSERT INTO "+net+" SELECT id + 10, v4, v6, NULL FROM "+net)
	consistent(t, e, time.Minute)
	validRecords(t, e)

	images := map[string]schemas.Row{}
	err := kafka.ScanTopic(context.Background(), clientOpts(t, e), e.Cfg.Kafka.PrimaryTopic, func(_ *kgo.Record, r *schemas.Record) error {
		if r.Table == "net" {
			images[*r.After["id"]] = r.After
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		snap, stream := images[id], images["1"+id]
		if snap == nil || stream == nil {
			t.Fatalf("no record of row %s (snapshot) or %s (stream): %v", id, "1"+id, images)
		}
		for _, c := range []string{"v4", "v6"} {
			if *snap[c] != *stream[c] {
				t.Errorf("row %s column %s: the snapshot carries %q, the binlog %q", id, c, *snap[c], *stream[c])
			}
		}
	}
	if u := images["1"]["u"]; u == nil || *u != "bM14DLq6ECaVZFuMZWAk2w==" {
		t.Errorf("row 1 column u in the snapshot: %v; want the 16 bytes of 6ccd780c-baba-1026-9564-5b8c656024db, base64", u)
	}
}

// Spatial columns are bytes (SRID and WKB): a snapshot reads them with SQL
// and the stream from the binlog (MySQL's table map gives them no character
// set), and both carry them as binary, so the standby stores them exactly
// and the cache, hash and JSON, holds what a rebuild would.
func TestSpatialColumnsArriveExactly(t *testing.T) {
	e := newEnv(t)
	geo := e.DB + ".geo"
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: geo, Keys: []string{"geo:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: geo, Keys: []string{"geojson:{id}"}, Action: "refresh", Format: "json"})
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB,
		"CREATE TABLE "+geo+" (id INT PRIMARY KEY, p POINT, g GEOMETRY, pg POLYGON)",
		"INSERT INTO "+geo+" VALUES (1, ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('LINESTRING(0 0, 1 1)'), ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))')), (2, NULL, NULL, NULL)")
	fromSnapshot(t, e, "storage-applier", "cache-applier")
	// the same values again, from the binlog, and a point with an SRID
	testenv.Exec(t, e.Primary, "INSERT INTO "+geo+" SELECT id + 10, p, g, pg FROM "+geo,
		"UPDATE "+geo+" SET p = ST_GeomFromText('POINT(3 4)', 4326) WHERE id = 11")
	consistent(t, e, time.Minute)
	validRecords(t, e)
}

// fromSnapshot starts a pipeline as an existing database is brought in:
// producer snapshot first, then the producer streaming from where it
// ended, then the services named.
func fromSnapshot(t *testing.T, e *testenv.Env, services ...string) {
	t.Helper()
	bin, err := plainBinDir() // built without the race detector
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, e.Cfg)
	start(t, cfgPath, filepath.Join(bin, "producer"), "snapshot").waitOK(2 * time.Minute)
	start(t, cfgPath, filepath.Join(bin, "producer")).waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	for _, s := range services {
		start(t, cfgPath, filepath.Join(bin, s))
	}
}
