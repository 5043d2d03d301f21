package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// A standby that differs is reported table by table, with the keys of the
// rows that differ.
func TestDatabasesNamesTheRowsThatDiffer(t *testing.T) {
	e := testenv.New(t)
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB, "CREATE TABLE "+e.DB+".t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO "+e.DB+".t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	testenv.Exec(t, e.Standby, "CREATE DATABASE "+e.DB, "CREATE TABLE "+e.DB+".t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO "+e.DB+".t VALUES (1, 'a'), (2, 'B'), (4, 'd')")
	tables, err := Databases(context.Background(), e.Primary, e.Standby, []string{e.DB})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].OK() || AllEqual(tables) {
		t.Fatalf("want one differing table, got %+v", tables)
	}
	got := strings.Join(tables[0].Diff, "; ")
	want := `id="2": primary v="b", standby v="B"; id="3": missing on the standby; id="4": only on the standby`
	if got != want {
		t.Fatalf("diff:\n got %s\nwant %s", got, want)
	}
	testenv.Exec(t, e.Standby, "DELETE FROM "+e.DB+".t", "INSERT INTO "+e.DB+".t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	if tables, err = Databases(context.Background(), e.Primary, e.Standby, []string{e.DB}); err != nil || !AllEqual(tables) {
		t.Fatalf("equal tables reported as %+v, %v", tables, err)
	}
}
