package cacheapply

import (
	"reflect"
	"testing"

	"github.com/lockstep-dr/lockstep/schemas"
)

func TestDDLTables(t *testing.T) {
	for _, c := range []struct {
		stmt    string
		tables  []string
		dropped string
	}{
		{"ALTER TABLE users ADD COLUMN x INT", []string{"app.users"}, ""},
		{"alter online table `other`.`we``ird` drop column a", []string{"other.we`ird"}, ""},
		{"DROP TABLE IF EXISTS a, other.b", []string{"app.a", "other.b"}, ""},
		{"TRUNCATE users", []string{"app.users"}, ""},
		{"TRUNCATE TABLE app.users", []string{"app.users"}, ""},
		{"RENAME TABLE a TO b, other.c TO d", []string{"app.a", "app.b", "other.c", "app.d"}, ""},
		{"CREATE OR REPLACE TABLE t (id INT)", []string{"app.t"}, ""},
		{"DROP DATABASE IF EXISTS `app`", nil, "app"},
		{"CREATE TABLE t (id INT)", nil, ""}, // a new table has no rows
		{"CREATE INDEX i ON users (email)", nil, ""},
	} {
		tables, dropped := ddlTables(&schemas.Record{Op: schemas.OpDDL, Database: "app", Schema: "app", Statement: c.stmt})
		if !reflect.DeepEqual(tables, c.tables) || dropped != c.dropped {
			t.Errorf("%s: tables %q dropped %q, want %q %q", c.stmt, tables, dropped, c.tables, c.dropped)
		}
	}
}
