package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// liveSchema reads column metadata from the primary's information_schema,
// for binlogs that do not carry it (binlog_row_metadata not FULL). It is the
// schema as it is now, not as it was when a row was written: rows read
// after a schema change that keeps the column count would be mapped wrong,
// which is why the producer warns at start (see preflight).
type liveSchema struct {
	db    *sql.DB
	known map[string][]columnMeta
}

func newLiveSchema(db *sql.DB) *liveSchema {
	return &liveSchema{db: db, known: make(map[string][]columnMeta)}
}

// forget drops what is known after DDL, which may change any table.
func (l *liveSchema) forget() { clear(l.known) }

func (l *liveSchema) columns(ctx context.Context, db, table string) ([]columnMeta, error) {
	if m, ok := l.known[db+"."+table]; ok {
		return m, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_KEY = 'PRI', COALESCE(CHARACTER_SET_NAME, ''), COLUMN_TYPE, DATA_TYPE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s.%s on the primary: %w", db, table, err)
	}
	defer rows.Close()
	var meta []columnMeta
	for rows.Next() {
		var m columnMeta
		var colType, dataType string
		if err := rows.Scan(&m.name, &m.key, &m.charset, &colType, &dataType); err != nil {
			return nil, err
		}
		m.unsigned = strings.Contains(colType, "unsigned")
		switch dataType {
		case "enum", "set":
			m.members = memberList(colType)
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			m.charset = "binary"
		}
		meta = append(meta, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	l.known[db+"."+table] = meta
	return meta, nil
}

// memberList parses the members of a COLUMN_TYPE such as enum('a','b') or
// set(...), in which a doubled quote stands for one.
func memberList(colType string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(colType); i++ {
		c := colType[i]
		switch {
		case !in && c == '\'':
			in = true
			cur.Reset()
		case in && c == '\'' && i+1 < len(colType) && colType[i+1] == '\'':
			cur.WriteByte('\'')
			i++
		case in && c == '\'':
			in = false
			out = append(out, cur.String())
		case in:
			cur.WriteByte(c)
		}
	}
	return out
}
