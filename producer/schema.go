package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// liveSchema reads column metadata from the primary's information_schema,
// for a snapshot's rows and for binlogs that do not carry it
// (binlog_row_metadata not FULL). For the binlog it is the
// schema as it is now, not as it was when a row was written: rows read
// after a schema change that keeps the column count would be mapped wrong,
// which is why the producer warns at start (see preflight).
type liveSchema struct {
	db        *sql.DB
	known     map[string][]columnMeta
	versioned map[string]bool
}

func newLiveSchema(db *sql.DB) *liveSchema {
	return &liveSchema{db: db, known: make(map[string][]columnMeta), versioned: make(map[string]bool)}
}

// forget drops what is known after DDL, which may change any table.
func (l *liveSchema) forget() {
	clear(l.known)
	clear(l.versioned)
}

// isVersioned reports whether a table is system-versioned (WITH SYSTEM
// VERSIONING) on the primary now.
func (l *liveSchema) isVersioned(ctx context.Context, db, table string) (bool, error) {
	if v, ok := l.versioned[db+"."+table]; ok {
		return v, nil
	}
	var n int
	err := l.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'SYSTEM VERSIONED'", db, table).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read the table type of %s.%s on the primary: %w", db, table, err)
	}
	l.versioned[db+"."+table] = n > 0
	return n > 0, nil
}

func (l *liveSchema) columns(ctx context.Context, db, table string) ([]columnMeta, error) {
	if m, ok := l.known[db+"."+table]; ok {
		return m, nil
	}
	meta, err := mysql.Columns(ctx, l.db, db, table)
	if err != nil {
		return nil, fmt.Errorf("on the primary: %w", err)
	}
	l.known[db+"."+table] = meta
	return meta, nil
}
