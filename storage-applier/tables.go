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
	columns []string // in table order
	has     map[string]bool
	// generated columns are computed by the standby from the others: the
	// row statements leave them out.
	generated map[string]bool
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
}

func newStandbyTables(db *sql.DB, databases []string) *standbyTables {
	return &standbyTables{db: db, databases: databases, known: make(map[string]*standbyTable)}
}

// forget drops what is known after DDL, which may change any table.
func (s *standbyTables) forget() { clear(s.known) }

// check returns the standby table a row record applies to, or what is
// wrong with the record (a permanent error).
func (s *standbyTables) check(ctx context.Context, r *schemas.Record) (*standbyTable, error) {
	if !mysql.Replicated(r.Database, s.databases) {
		return nil, service.Permanentf("database %s is not replicated (primary.databases = %v): a record for it is refused", r.Database, s.databases)
	}
	t, ok := s.known[r.Name()]
	if !ok {
		var err error
		if t, err = s.load(ctx, r.Database, r.Table); err != nil {
			return nil, err
		}
		s.known[r.Name()] = t
	}
	if len(t.columns) == 0 {
		return nil, service.Permanentf("table %s does not exist on the standby", r.Name())
	}
	same := len(r.Columns) == len(t.columns)
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
		len(names), strings.Join(names, ", "), r.Name(), len(t.columns), strings.Join(t.columns, ", "), unknownText(unknown))
}

func unknownText(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	return "; not on the standby: " + strings.Join(cols, ", ")
}

// load reads a table's columns; none when the table does not exist.
// GENERATION_EXPRESSION is NULL (MariaDB) or empty (MySQL) for stored data.
func (s *standbyTables) load(ctx context.Context, db, table string) (*standbyTable, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, COALESCE(GENERATION_EXPRESSION, '') <> ''
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s.%s on the standby: %w", db, table, err)
	}
	defer rows.Close()
	t := &standbyTable{has: make(map[string]bool), generated: make(map[string]bool)}
	for rows.Next() {
		var name string
		var gen bool
		if err := rows.Scan(&name, &gen); err != nil {
			return nil, err
		}
		t.columns = append(t.columns, name)
		t.has[name] = true
		if gen {
			t.generated[name] = true
		}
	}
	return t, rows.Err()
}
