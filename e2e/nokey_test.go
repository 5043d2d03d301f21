package e2e

import (
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// A table without a primary key is carried as MySQL replication carries it:
// an update or delete matches one row equal to the whole before image,
// NULLs, FLOATs and duplicate rows included.
func TestTableWithoutPrimaryKey(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	table := e.DB + ".log"
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+e.DB,
		"CREATE TABLE "+table+" (a INT, f FLOAT, d DOUBLE, s VARCHAR(20), b BLOB, n DECIMAL(5,2), g INT AS (a * 2) VIRTUAL)",
		"INSERT INTO "+table+" (a, f, d, s, b, n) VALUES (1, 1.1, 0.1, 'x', X'00', 1.5), (1, 1.1, 0.1, 'x', X'00', 1.5), (1, 1.1, 0.1, 'x', X'00', 1.5)",
		"INSERT INTO "+table+" (a, f, d, s, b, n) VALUES (NULL, NULL, NULL, NULL, NULL, NULL), (2, 3.4028235e38, -1e-300, 'y', X'FF', -0.01)",
		// one of three identical rows
		"UPDATE "+table+" SET s = 'one' WHERE a = 1 LIMIT 1",
		"DELETE FROM "+table+" WHERE a = 1 AND s = 'x' LIMIT 1",
		"UPDATE "+table+" SET a = 3 WHERE a IS NULL",
		"UPDATE "+table+" SET f = f * 2, n = n + 1 WHERE a = 2",
		"DELETE FROM "+table+" WHERE s = 'one'",
		"INSERT INTO "+table+" (a) VALUES (99)",
	)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.Standby, table+" WHERE a = 99")
		return n == 1, "last insert not on the standby yet"
	})
	consistent(t, e, 30*time.Second)
	validRecords(t, e)
	if n := testenv.Count(t, e.Standby, table); n != 4 {
		t.Fatalf("standby has %d rows, want 4", n)
	}
}
