package cacheapply

import (
	"reflect"
	"testing"

	"github.com/lockstep-dr/lockstep/schemas"
)

func TestDDLEffect(t *testing.T) {
	for _, c := range []struct {
		stmt string
		want ddlEffect
	}{
		{"ALTER TABLE users ADD COLUMN x INT", ddlEffect{rows: []string{"app.users"}, shaped: []string{"app.users"}}},
		{"alter online table `other`.`we``ird` drop column a", ddlEffect{rows: []string{"other.we`ird"}, shaped: []string{"other.we`ird"}}},
		{"DROP TABLE IF EXISTS a, other.b", ddlEffect{rows: []string{"app.a", "other.b"}, shaped: []string{"app.a", "other.b"}}},
		{"TRUNCATE users", ddlEffect{rows: []string{"app.users"}, shaped: []string{"app.users"}}},
		{"TRUNCATE TABLE app.users", ddlEffect{rows: []string{"app.users"}, shaped: []string{"app.users"}}},
		{"RENAME TABLE a TO b, other.c TO d", ddlEffect{rows: []string{"app.a", "app.b", "other.c", "app.d"}, shaped: []string{"app.a", "app.b", "other.c", "app.d"}}},
		{"CREATE OR REPLACE TABLE t (id INT)", ddlEffect{rows: []string{"app.t"}, shaped: []string{"app.t"}}},
		{"DROP DATABASE IF EXISTS `app`", ddlEffect{droppedDB: "app"}},
		{"CREATE TABLE t (id INT)", ddlEffect{shaped: []string{"app.t"}}}, // a new table has no rows
		{"CREATE INDEX i ON users (email)", ddlEffect{shaped: []string{"app.users"}}},
		{"DROP INDEX i ON other.users", ddlEffect{shaped: []string{"other.users"}}},
		{"ANALYZE TABLE users", ddlEffect{}},
		{"CREATE VIEW v AS SELECT 1", ddlEffect{}},
	} {
		got := ddlEffectOf(&schemas.Record{Op: schemas.OpDDL, Database: "app", Schema: "app", Statement: c.stmt})
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.stmt, got, c.want)
		}
	}
}
