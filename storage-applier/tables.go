package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// standbyTable is what the applier knows of one standby table.
type standbyTable struct {
	has map[string]bool
	// generated columns are computed by the standby from the others: the
	// row statements leave them out.
	generated map[string]bool
	// onUpdate columns are set by the standby on any UPDATE that leaves
	// them out: the row statements always set them.
	onUpdate map[string]bool
	// foldable: the group's changes to it may be folded (fold.go).
	foldable bool
	// record lists the columns in table order, as records of changes the
	// standby makes itself do; storedAs is each one's mysql.Column.Stored.
	record   []schemas.Column
	storedAs []string
}

// standbyTables checks each row record against the standby's schema before
// any of it is applied: records are input from a topic, and a record for
// another database, a missing table or a different column list must stop
// the applier with a clear error, not write something else.
type standbyTables struct {
	db *sql.DB
	// databases are the replicated ones (primary.databases; empty: all but
	// the system databases): records for any other are refused.
	databases []string
	known     map[string]*standbyTable
	// refs are the foreign keys that reference each table ("db.table")
	// with an action that changes child rows.
	refs map[string][]foreignKey
}

func newStandbyTables(db *sql.DB, databases []string) *standbyTables {
	return &standbyTables{db: db, databases: databases, known: make(map[string]*standbyTable), refs: make(map[string][]foreignKey)}
}

// forget drops what is known after DDL, which may change any table.
func (s *standbyTables) forget() {
	clear(s.known)
	clear(s.refs)
}

// get returns what is known of a table, reading it the first time.
func (s *standbyTables) get(ctx context.Context, db, table string) (*standbyTable, error) {
	t, ok := s.known[db+"."+table]
	if !ok {
		var err error
		if t, err = s.load(ctx, db, table); err != nil {
			return nil, err
		}
		s.known[db+"."+table] = t
	}
	return t, nil
}

// check returns the standby table a row record applies to, or what is
// wrong with the record (a permanent error).
func (s *standbyTables) check(ctx context.Context, r *schemas.Record) (*standbyTable, error) {
	if !mysql.Replicated(r.Database, s.databases) {
		return nil, service.Permanentf("database %s is not replicated (primary.databases = %v): a record for it is refused", r.Database, s.databases)
	}
	t, err := s.get(ctx, r.Database, r.Table)
	if err != nil {
		return nil, err
	}
	if len(t.record) == 0 {
		return nil, service.Permanentf("table %s does not exist on the standby", r.Name())
	}
	same := len(r.Columns) == len(t.record)
	for _, c := range r.Columns {
		same = same && t.has[c.Name]
	}
	if same { // the common case: checked without allocating, once per row
		return t, nil
	}
	names := make([]string, len(r.Columns))
	var unknown []string
	for i, c := range r.Columns {
		names[i] = c.Name
		if !t.has[c.Name] {
			unknown = append(unknown, c.Name)
		}
	}
	return nil, service.Permanentf("the record has %d columns (%s), the standby table %s has %d (%s)%s: the schemas differ",
		len(names), strings.Join(names, ", "), r.Name(), len(t.record), strings.Join(columnNames(t.record), ", "), unknownText(unknown))
}

func columnNames(cols []schemas.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

func unknownText(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	return "; not on the standby: " + strings.Join(cols, ", ")
}

// load reads a table's columns; none when the table does not exist.
func (s *standbyTables) load(ctx context.Context, db, table string) (*standbyTable, error) {
	cols, err := mysql.Columns(ctx, s.db, db, table)
	if err != nil {
		return nil, fmt.Errorf("on the standby: %w", err)
	}
	t := &standbyTable{has: make(map[string]bool), generated: make(map[string]bool), onUpdate: make(map[string]bool)}
	for _, c := range cols {
		if c.OnUpdate {
			t.onUpdate[c.Name] = true
		}
		t.has[c.Name] = true
		if c.Generated {
			t.generated[c.Name] = true
		}
		t.record, t.storedAs = append(t.record, c.Record()), append(t.storedAs, c.Stored)
	}
	if len(t.record) == 0 {
		return t, nil
	}
	var foldable sql.NullBool
	args := make([]any, 0, 18)
	for range strings.Count(sqlFoldable, "?") / 2 {
		args = append(args, db, table)
	}
	if err := s.db.QueryRowContext(ctx, sqlFoldable, args...).Scan(&foldable); err != nil {
		return nil, fmt.Errorf("read the keys, foreign keys, triggers and checks of %s.%s on the standby: %w", db, table, err)
	}
	t.foldable = foldable.Valid && foldable.Bool
	return t, nil
}
