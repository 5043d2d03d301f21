package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Records on the primary log are input: a transaction whose second row is
// wrong stops the storage-applier with an error naming the topic, the
// offset, the table and what is wrong, and its first row (valid) is not
// applied either.
func TestBadRecordsStopTheApplierAndApplyNothing(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(e *testenv.Env, r *schemas.Record)
		want  []string
	}{
		{"unknown table", func(_ *testenv.Env, r *schemas.Record) { r.Table = "nosuch" },
			[]string{".nosuch does not exist on the standby"}},
		{"a column the standby lacks", func(_ *testenv.Env, r *schemas.Record) {
			r.Columns = append(r.Columns, schemas.Column{Name: "color", Type: "text"})
			r.After["color"] = ptr("red")
		}, []string{"the record has 3 columns (id, title, color)", "has 2 (id, title)", "not on the standby: color"}},
		{"a column missing from the record", func(_ *testenv.Env, r *schemas.Record) {
			r.Columns = r.Columns[:1]
			delete(r.After, "title")
		}, []string{"the record has 1 columns (id)", "has 2 (id, title)"}},
		{"a database that is not replicated", func(_ *testenv.Env, r *schemas.Record) { r.Database = "mysql" },
			[]string{"database mysql is not replicated"}},
		{"a value that is not base64 in a binary column", func(_ *testenv.Env, r *schemas.Record) {
			r.Columns[1].Binary = true
			r.After["title"] = ptr("not base64!")
		}, []string{"column title of", "is not base64"}},
		{"lockstep's own checkpoint", func(_ *testenv.Env, r *schemas.Record) { r.Database, r.Table = "lockstep", "checkpoint" },
			[]string{"database lockstep is not replicated"}},
		{"a table name carrying SQL", func(_ *testenv.Env, r *schemas.Record) { r.Table = "items`; DROP TABLE items; --" },
			[]string{".items`; DROP TABLE items; -- does not exist on the standby"}},
		{"a database name carrying SQL", func(e *testenv.Env, r *schemas.Record) { r.Database = e.DB + "`.items; DROP DATABASE x; --" },
			[]string{"is not replicated"}},
		{"a row the standby lacks", func(_ *testenv.Env, r *schemas.Record) {
			r.Op, r.Before, r.After = schemas.OpDelete, r.After, nil
		}, []string{"0 rows matched on the standby, want 1", "diverged"}},
		{"a row change after DDL in one transaction", func(_ *testenv.Env, r *schemas.Record) {
			r.Op, r.Statement, r.Txn.Last = schemas.OpDDL, "DROP TABLE items", false
		}, []string{"offset 2", "ddl record that is not the first of its transaction"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			bad := itemRow(e, "0-9-2", 1, true, 3)
			c.spoil(e, bad)
			craft(t, e,
				itemRow(e, "0-9-1", 0, true, 1),
				itemRow(e, "0-9-2", 0, false, 2), // valid, but its transaction is not
				bad,
			)
			applier := start(t, writeConfig(t, e.Cfg), "storage-applier")
			log := applier.waitExit(30 * time.Second)
			mustContain(t, log, append(c.want, e.Cfg.Kafka.PrimaryTopic, "offset 2")...)
			if !strings.Contains(log, "nothing of") {
				t.Errorf("the error does not say that nothing of the transaction was applied")
			}
			if got := standbyItems(t, e); got != "[1]" {
				t.Fatalf("standby rows %v, want only [1] (nothing of the bad transaction)", got)
			}
		})
	}
}

// Statements go to the standby many per round trip, and a failing one does
// not say which it was: the applier then re-applies from its checkpoint one
// statement per round trip, and the error names the row. Here the standby
// already holds a row the primary inserts (a diverged standby); the first
// transaction, sharing the failed round trip, is applied after all.
func TestDivergedStandbyIsNamedAfterAFailedRoundTrip(t *testing.T) {
	e := newEnv(t)
	craft(t, e,
		itemRow(e, "0-9-1", 0, true, 1),
		itemRow(e, "0-9-2", 0, false, 2),
		itemRow(e, "0-9-2", 1, true, 3),
	)
	testenv.Exec(t, e.Standby, "INSERT INTO "+e.DB+".items VALUES (3, 'diverged')")
	applier := start(t, writeConfig(t, e.Cfg), "storage-applier")
	log := applier.waitExit(30 * time.Second)
	mustContain(t, log, "round trip of", "one statement per round trip", "offset 2, transaction 0-9-2 row 1", "Duplicate entry '3'", "nothing of the transaction was applied")
	if got := standbyItems(t, e); got != "[1 3]" {
		t.Fatalf("standby rows %v, want [1 3]: transaction 0-9-1 applied, nothing of 0-9-2", got)
	}
}

// Values are data, never SQL: a forged record whose values carry SQL is
// applied as text, through placeholders.
func TestSQLInValuesIsStoredAsText(t *testing.T) {
	e := newEnv(t)
	evil := "x'); DROP TABLE items; -- \\' \" `"
	r := itemRow(e, "0-9-1", 0, true, 1)
	r.After["title"] = ptr(evil)
	craft(t, e, r)
	start(t, writeConfig(t, e.Cfg), "storage-applier")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var title string
		err := e.Standby.QueryRow("SELECT title FROM " + e.DB + ".items WHERE id = 1").Scan(&title)
		return err == nil && title == evil, fmt.Sprintf("standby title %q, %v", title, err)
	})
}
