package mysql

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/schemas"
)

// Column is what information_schema tells of a column.
type Column struct {
	Name string
	Key  bool // in the primary key
	// Charset is a character or binary string column's character set
	// ("binary" for BINARY, VARBINARY and BLOB types); "" for the others.
	Charset   string
	Unsigned  bool
	Members   []string // of an ENUM or SET
	Generated bool     // computed by the server from other columns
	// OnUpdate marks a column the server sets itself when an UPDATE
	// changes the row and leaves it out (ON UPDATE CURRENT_TIMESTAMP).
	OnUpdate bool
	// Invisible marks a column SELECT * leaves out (INVISIBLE).
	Invisible bool
	// Type is the type as records name it (schemas/doc.go).
	Type string
	// Stored is one of StoredTypes, or "".
	Stored string
}

// StoredTypes are MariaDB's INET4, INET6 and UUID (information_schema's
// DATA_TYPE): SQL reads them as text, the binlog carries their stored
// bytes, and so do records (StoredBytes).
var StoredTypes = []string{"inet4", "inet6", "uuid"}

// spatialTypes are the spatial DATA_TYPEs, all "geometry" in records.
var spatialTypes = []string{"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"}

// Record is the column as records made from SQL rows list it (a snapshot's
// rows, the changes the standby makes itself): binary strings and BIT
// values are raw bytes, base64; text is read as UTF-8.
func (c Column) Record() schemas.Column {
	return schemas.Column{Name: c.Name, Key: c.Key, Type: c.Type, Binary: c.Charset == "binary" || strings.HasPrefix(c.Type, "bit(") || c.Type == "vector", Invisible: c.Invisible}
}

// Columns reads a table's columns, in table order; none when the table
// does not exist. GENERATION_EXPRESSION is NULL (MariaDB) or empty (MySQL)
// for stored data.
func Columns(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, db, table string) ([]Column, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_KEY = 'PRI', COALESCE(CHARACTER_SET_NAME, ''), COLUMN_TYPE, DATA_TYPE,
			COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0), COALESCE(DATETIME_PRECISION, 0), COALESCE(GENERATION_EXPRESSION, '') <> '',
			LOWER(EXTRA) LIKE '%on update%', LOWER(EXTRA) LIKE '%invisible%'
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var c Column
		var colType, dataType string
		var precision, scale, fsp int
		if err := rows.Scan(&c.Name, &c.Key, &c.Charset, &colType, &dataType, &precision, &scale, &fsp, &c.Generated, &c.OnUpdate, &c.Invisible); err != nil {
			return nil, err
		}
		c.Unsigned = strings.Contains(colType, "unsigned")
		switch dataType {
		case "enum", "set":
			c.Members = memberList(colType)
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			c.Charset = "binary"
		}
		if slices.Contains(spatialTypes, dataType) {
			c.Charset = "binary" // SRID and WKB, as the binlog has them
		}
		if slices.Contains(StoredTypes, dataType) {
			c.Charset, c.Stored = "binary", dataType
		}
		c.Type = recordType(dataType, c.Unsigned, c.Charset == "binary", precision, scale, fsp)
		cols = append(cols, c)
	}
	return cols, rows.Err()
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
		v := strings.HasPrefix(dataType, "var")
		switch {
		case bin && v:
			return "varbinary"
		case bin:
			return "binary"
		case v:
			return "varchar"
		}
		return "char"
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		if bin {
			return "blob"
		}
		return "text"
	case "float", "double", "date", "year", "enum", "set", "json", "vector":
		return dataType
	}
	if slices.Contains(spatialTypes, dataType) {
		return "geometry"
	}
	if slices.Contains(StoredTypes, dataType) {
		return "binary" // as the binlog's table map has them
	}
	return dataType
}

// StoredBytes turns the text SQL shows of a value of MariaDB's INET4, INET6
// or UUID type (kind) into the bytes the server stores and the binlog
// carries: 4 for INET4, 16 for INET6 (IPv4-mapped and -compatible forms
// included), 16 for UUID in the order of its text.
func StoredBytes(kind string, text []byte) ([]byte, error) {
	switch kind {
	case "inet4", "inet6":
		a, err := netip.ParseAddr(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s value %q: %w", kind, text, err)
		}
		if kind == "inet4" {
			if !a.Is4() {
				return nil, fmt.Errorf("inet4 value %q is not an IPv4 address", text)
			}
			b := a.As4()
			return b[:], nil
		}
		b := a.As16()
		return b[:], nil
	case "uuid":
		h := strings.ReplaceAll(string(text), "-", "")
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("uuid value %q is not 32 hex digits", text)
		}
		return b, nil
	}
	return nil, fmt.Errorf("no stored form for type %q", kind)
}
