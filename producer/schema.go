package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
	rows, err := l.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_KEY = 'PRI', COALESCE(CHARACTER_SET_NAME, ''), COLUMN_TYPE, DATA_TYPE,
			COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0), COALESCE(DATETIME_PRECISION, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s.%s on the primary: %w", db, table, err)
	}
	defer rows.Close()
	var meta []columnMeta
	for rows.Next() {
		var m columnMeta
		var colType, dataType string
		var precision, scale, fsp int
		if err := rows.Scan(&m.name, &m.key, &m.charset, &colType, &dataType, &precision, &scale, &fsp); err != nil {
			return nil, err
		}
		m.unsigned = strings.Contains(colType, "unsigned")
		switch dataType {
		case "enum", "set":
			m.members = memberList(colType)
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			m.charset = "binary"
		}
		m.sqlType = recordType(dataType, m.unsigned, m.charset == "binary", precision, scale, fsp)
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

// recordType names a column's type as records do (schemas/doc.go) from its
// information_schema description: DATA_TYPE, unsigned, a binary character
// set, and its numeric precision and scale or fraction digits.
func recordType(dataType string, unsigned, bin bool, precision, scale, fsp int) string {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		if unsigned {
			return dataType + " unsigned"
		}
		return dataType
	case "decimal":
		return fmt.Sprintf("decimal(%d,%d)", precision, scale)
	case "time", "datetime", "timestamp":
		return fmt.Sprintf("%s(%d)", dataType, fsp)
	case "bit":
		return fmt.Sprintf("bit(%d)", precision)
	case "char", "varchar", "binary", "varbinary":
		if bin {
			return pick(strings.HasPrefix(dataType, "var"), "varbinary", "binary")
		}
		return pick(strings.HasPrefix(dataType, "var"), "varchar", "char")
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return pick(bin, "blob", "text")
	case "float", "double", "date", "year", "enum", "set", "json":
		return dataType
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return "geometry"
	}
	return dataType
}
