package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
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
