package verify

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

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
	tables, err := Databases(context.Background(), e.Primary, e.Standby, []string{e.DB}, 0, nil)
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
	if tables, err = Databases(context.Background(), e.Primary, e.Standby, []string{e.DB}, 0, nil); err != nil || !AllEqual(tables) {
		t.Fatalf("equal tables reported as %+v, %v", tables, err)
	}
}

// A table is compared in chunks of its primary key (here two columns, one
// of them text in a case-insensitive collation): only the chunk with the
// differing row is compared row by row; a difference that goes away while
// verify re-checks (a standby catching up) is not reported.
func TestChunksNameTheDifferenceAndSettle(t *testing.T) {
	e := testenv.New(t)
	def := "CREATE TABLE " + e.DB + ".c (a INT, b VARCHAR(10) COLLATE utf8mb4_general_ci, f FLOAT, PRIMARY KEY (a, b))"
	fill := "INSERT INTO " + e.DB + ".c SELECT seq DIV 2, IF(seq % 2, 'X', 'y'), seq / 3 FROM " + e.Seq(2500)
	for _, db := range []*sql.DB{e.Primary, e.Standby} {
		testenv.Exec(t, db, "CREATE DATABASE "+e.DB, def, fill)
	}
	testenv.Exec(t, e.Standby, "UPDATE "+e.DB+".c SET f = f + 0.0001 WHERE a = 700 AND b = 'x'")
	ctx := context.Background()
	tables, err := Databases(ctx, e.Primary, e.Standby, []string{e.DB}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tables[0]
	if c.OK() || c.Chunks != 3 || c.Differing != 1 || len(c.Diff) != 1 || !strings.HasPrefix(c.Diff[0], `a="700",b="X": primary f="467", standby f="467.0001"`) || c.PrimaryRows != 2500 || c.StandbyRows != 2500 {
		t.Fatalf("want 3 chunks, 1 differing with row a=700,b=X named; got %+v", c)
	}

	go func() {
		time.Sleep(500 * time.Millisecond)
		_, _ = e.Standby.Exec("UPDATE " + e.DB + ".c SET f = 1401 / 3 WHERE a = 700 AND b = 'x'")
	}()
	if tables, err = Databases(ctx, e.Primary, e.Standby, []string{e.DB}, 10*time.Second, nil); err != nil || !AllEqual(tables) {
		t.Fatalf("a chunk that became equal while re-checked: %+v, %v", tables, err)
	}
}
