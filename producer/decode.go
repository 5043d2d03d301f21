package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding/charmap"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Charsets maps a collation id to its character set name, as the server
// lists them in information_schema.COLLATIONS.
type charsets map[uint64]string

// textCodec says how a character column's bytes become record text. UTF-8
// text travels as it is; latin1 (MySQL's latin1 is Windows-1252) is turned
// into UTF-8, which the standby turns back on insert; the binary character
// set and every other character set travel as raw bytes, base64.
func textCodec(charset string) (binary bool, decode func([]byte) ([]byte, error)) {
	switch charset {
	case "utf8mb4", "utf8mb3", "utf8", "ascii":
		return false, nil
	case "latin1":
		return false, latin1ToUTF8
	default:
		return true, nil
	}
}

// columnMeta is what the producer needs of a column beyond its binlog
// type: from the binlog's metadata, or from information_schema (Type only
// from there: a snapshot's rows have no binlog type).
type columnMeta = mysql.Column

// binlogMeta reads a table map's column metadata; ok is false when the
// binlog carries no column names (binlog_row_metadata is not FULL).
func binlogMeta(tm *replication.TableMapEvent, cs charsets) (meta []columnMeta, ok bool) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, false
	}
	collations, enums, sets, unsigned := tm.CollationMap(), tm.EnumStrValueMap(), tm.SetStrValueMap(), tm.UnsignedMap()
	var visible map[int]bool
	if len(tm.VisibilityBitmap) > 0 { // MySQL 8.0.23+
		visible = tm.VisibilityMap()
	}
	meta = make([]columnMeta, tm.ColumnCount)
	for i := range meta {
		meta[i] = columnMeta{Name: names[i], Unsigned: unsigned[i], Members: enums[i], Invisible: visible != nil && !visible[i]}
		if tm.IsSetColumn(i) {
			meta[i].Members = sets[i]
		}
		if c, ok := collations[i]; ok {
			meta[i].Charset = cs[c]
			if meta[i].Charset == "" {
				meta[i].Charset = fmt.Sprintf("collation %d", c) // unknown: its bytes, base64
			}
		}
	}
	for _, k := range tm.PrimaryKey {
		meta[k].Key = true
	}
	return meta, true
}

// table is what the producer knows of a table from one table-map event:
// the record's column list and how to turn each binlog value into text.
type table struct {
	db, name string
	columns  []schemas.Column
	decoders []func(any) (*string, error)
}

// newTable reads a table-map event with its columns' metadata.
func newTable(tm *replication.TableMapEvent, meta []columnMeta) (*table, error) {
	t := &table{db: string(tm.Schema), name: string(tm.Table)}
	if len(meta) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("binlog rows of %s.%s have %d columns, the metadata %d", t.db, t.name, tm.ColumnCount, len(meta))
	}
	for i, m := range meta {
		col := schemas.Column{Name: m.Name, Key: m.Key, Invisible: m.Invisible}
		tp, raw := tm.ColumnType[i], tm.ColumnMeta[i]
		var conv func([]byte) ([]byte, error)
		if m.Charset != "" {
			col.Binary, conv = textCodec(m.Charset)
		}
		var dec func(any) (*string, error)
		switch {
		case tm.IsEnumColumn(i):
			col.Type, dec = "enum", members(m.Name, m.Members, false)
		case tm.IsSetColumn(i):
			col.Type, dec = "set", members(m.Name, m.Members, true)
		case tp == gomysql.MYSQL_TYPE_BIT:
			nbits := int(raw>>8)*8 + int(raw&0xff)
			col.Type, col.Binary, dec = fmt.Sprintf("bit(%d)", nbits), true, bits((nbits+7)/8)
		case tp == gomysql.MYSQL_TYPE_YEAR:
			col.Type, dec = "year", year
		case tp == gomysql.MYSQL_TYPE_VECTOR:
			// MySQL 9's: its float32s as stored, carried as bytes
			col.Type, col.Binary, dec = "vector", true, scalar(true, nil)
		case tp == gomysql.MYSQL_TYPE_GEOMETRY:
			// SRID and WKB: bytes, though MySQL's table map gives no
			// character set for it (MariaDB's says binary)
			col.Type, col.Binary, dec = "geometry", true, scalar(true, nil)
		case tp == gomysql.MYSQL_TYPE_JSON:
			// MySQL's binary JSON (MariaDB's JSON is text, a longtext)
			col.Type, dec = "json", mysqlJSON
		case tp == gomysql.MYSQL_TYPE_STRING && m.Charset == "binary":
			// BINARY(n): the binlog drops the trailing zero bytes the column keeps
			col.Type, dec = "binary", padded(stringLength(raw))
		case (tp == gomysql.MYSQL_TYPE_TIME || tp == gomysql.MYSQL_TYPE_TIME2) && raw > 0:
			col.Type, dec = typeName(tp, raw, false, false), fraction(int(raw))
		default:
			col.Type = typeName(tp, raw, col.Binary, m.Unsigned)
			dec = scalar(col.Binary, conv)
		}
		t.columns = append(t.columns, col)
		t.decoders = append(t.decoders, dec)
	}
	return t, nil
}

// row turns one binlog row image into a record row.
func (t *table) row(values []any) (schemas.Row, error) {
	if len(values) != len(t.columns) {
		return nil, fmt.Errorf("row of %s.%s has %d values for %d columns", t.db, t.name, len(values), len(t.columns))
	}
	r := make(schemas.Row, len(values))
	for i, v := range values {
		s, err := t.decoders[i](v)
		if err != nil {
			return nil, fmt.Errorf("column %s of %s.%s: %w", t.columns[i].Name, t.db, t.name, err)
		}
		r[t.columns[i].Name] = s
	}
	return r, nil
}

// key is the primary-key part of a row image.
func (t *table) key(r schemas.Row) schemas.Row { return keyOf(t.columns, r) }

// keyOf is the part of a row image in the key columns of cols.
func keyOf(cols []schemas.Column, r schemas.Row) schemas.Row {
	k := make(schemas.Row)
	for _, c := range cols {
		if c.Key {
			k[c.Name] = r[c.Name]
		}
	}
	return k
}

func typeName(tp byte, meta uint16, bin, unsigned bool) string {
	u := ""
	if unsigned {
		u = " unsigned"
	}
	switch tp {
	case gomysql.MYSQL_TYPE_TINY:
		return "tinyint" + u
	case gomysql.MYSQL_TYPE_SHORT:
		return "smallint" + u
	case gomysql.MYSQL_TYPE_INT24:
		return "mediumint" + u
	case gomysql.MYSQL_TYPE_LONG:
		return "int" + u
	case gomysql.MYSQL_TYPE_LONGLONG:
		return "bigint" + u
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		return fmt.Sprintf("decimal(%d,%d)", meta>>8, meta&0xff)
	case gomysql.MYSQL_TYPE_FLOAT:
		return "float"
	case gomysql.MYSQL_TYPE_DOUBLE:
		return "double"
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		return "date"
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		return fmt.Sprintf("time(%d)", meta)
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
		return fmt.Sprintf("datetime(%d)", meta)
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		return fmt.Sprintf("timestamp(%d)", meta)
	case gomysql.MYSQL_TYPE_YEAR:
		return "year"
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
		return pick(bin, "varbinary", "varchar")
	case gomysql.MYSQL_TYPE_STRING:
		return pick(bin, "binary", "char")
	case gomysql.MYSQL_TYPE_BLOB:
		return pick(bin, "blob", "text")
	case gomysql.MYSQL_TYPE_JSON:
		return "json"
	case gomysql.MYSQL_TYPE_GEOMETRY:
		return "geometry"
	default:
		return fmt.Sprintf("type%d", tp)
	}
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// scalar renders the values go-mysql decodes as numbers or strings; conv,
// if set, turns a character column's bytes into UTF-8.
// mysqlJSON renders a MySQL JSON value as MySQL itself shows it (SELECT,
// JSON_EXTRACT), so that the cache holds what a reader of the standby
// gets: go-mysql's MySQL-text rendering (types and key order kept) with
// MySQL's spacing and doubles (mysqlText). A partial update logs a diff,
// not the value: refused.
func mysqlJSON(v any) (*string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		s := mysqlText([]byte(x))
		return &s, nil
	case []byte:
		s := mysqlText(x)
		return &s, nil
	case *replication.JsonDiff:
		return nil, errPartialJSON
	}
	return nil, fmt.Errorf("unexpected binlog value %T for a JSON column", v)
}

var errPartialJSON = errors.New("a partial JSON update")

// mysqlText turns compact JSON text into MySQL's: a space after each ','
// and ':' between members, and doubles as MySQL prints them (mysqlDouble)
// where go-mysql's text differs: those it wrote with an exponent, and
// whole ones of 16 digits or more (which MySQL writes with one). A DECIMAL
// inside JSON keeps its text, but for a whole one of 16 digits or more
// written with one decimal place, which reads as a double.
func mysqlText(b []byte) string {
	out := make([]byte, 0, len(b)+len(b)/8)
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out = append(out, c, ' ')
			continue
		case !inString && (c == '-' || c >= '0' && c <= '9'):
			j := i
			for j < len(b) && strings.IndexByte("+-.0123456789eE", b[j]) >= 0 {
				j++
			}
			out = append(out, number(string(b[i:j]))...)
			i = j - 1
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// number is a JSON number of go-mysql's text as MySQL prints it.
func number(tok string) string {
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil || !strings.ContainsAny(tok, "eE") && !(strings.HasSuffix(tok, ".0") && math.Abs(f) >= 1e15) {
		return tok
	}
	return mysqlDouble(f)
}

// mysqlDouble is MySQL's JSON text of a double: its shortest digits, in
// plain notation (with ".0" when whole) for decimal exponents -15 to 14,
// otherwise as 1.5e15 or 5e-324.
func mysqlDouble(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	x, _ := strconv.Atoi(exp)
	if x >= -15 && x <= 14 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	return mant + "e" + strconv.Itoa(x)
}

// scalar renders a value as text, or as base64 when bin; conv, if any,
// turns a character set that keeps ASCII as it is into UTF-8.
func scalar(bin bool, conv func([]byte) ([]byte, error)) func(any) (*string, error) {
	text := func(b []byte) (*string, error) {
		if conv != nil {
			var err error
			if b, err = conv(b); err != nil {
				return nil, err
			}
		}
		return schemas.EncodeValue(b, bin), nil
	}
	return func(v any) (*string, error) {
		var s string
		switch x := v.(type) {
		case nil:
			return nil, nil
		case string:
			// Most text is ASCII, which every conversion keeps as it is:
			// the value itself, without a copy.
			if !bin && (conv == nil || ascii(x)) {
				return &x, nil
			}
			return text([]byte(x))
		case []byte:
			return text(x)
		case int8:
			s = strconv.FormatInt(int64(x), 10)
		case int16:
			s = strconv.FormatInt(int64(x), 10)
		case int32:
			s = strconv.FormatInt(int64(x), 10)
		case int64:
			s = strconv.FormatInt(x, 10)
		case int:
			s = strconv.Itoa(x)
		case uint8:
			s = strconv.FormatUint(uint64(x), 10)
		case uint16:
			s = strconv.FormatUint(uint64(x), 10)
		case uint32:
			s = strconv.FormatUint(uint64(x), 10)
		case uint64:
			s = strconv.FormatUint(x, 10)
		case float32:
			s = strconv.FormatFloat(float64(x), 'g', -1, 32)
		case float64:
			s = strconv.FormatFloat(x, 'g', -1, 64)
		default:
			return nil, fmt.Errorf("unexpected binlog value %T", v)
		}
		return &s, nil
	}
}

// members renders ENUM (a 1-based index) and SET (a bitmap) values as the
// member names the table defines.
func members(col string, names []string, set bool) func(any) (*string, error) {
	return func(v any) (*string, error) {
		if v == nil {
			return nil, nil
		}
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("unexpected %T for enum/set", v)
		}
		if !set {
			s := ""
			if n > 0 { // 0 is the empty "error" member
				if int(n) > len(names) {
					return nil, fmt.Errorf("enum index %d beyond its %d members", n, len(names))
				}
				s = names[n-1]
			}
			return &s, nil
		}
		var out []string
		for i, name := range names {
			if n&(1<<i) != 0 {
				out = append(out, name)
			}
		}
		s := strings.Join(out, ",")
		return &s, nil
	}
}

// bits renders BIT(n) as its big-endian bytes, base64, as a SELECT returns them.
func bits(size int) func(any) (*string, error) {
	return func(v any) (*string, error) {
		if v == nil {
			return nil, nil
		}
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("unexpected %T for bit", v)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		s := base64.StdEncoding.EncodeToString(b[8-size:])
		return &s, nil
	}
}

// stringLength is the byte length of a CHAR/BINARY column from its binlog
// metadata, which packs the real type and a 10-bit length into two bytes.
func stringLength(meta uint16) int {
	hi, lo := meta>>8, meta&0xff
	if hi&0x30 != 0x30 {
		return int(lo | ((hi&0x30)^0x30)<<4)
	}
	return int(lo)
}

// padded renders BINARY(n) values at their full length.
func padded(n int) func(any) (*string, error) {
	raw := scalar(true, nil)
	return func(v any) (*string, error) {
		s, ok := v.(string)
		if !ok || len(s) >= n {
			return raw(v)
		}
		return raw(s + strings.Repeat("\x00", n-len(s)))
	}
}

// fraction renders TIME(fsp) with all its fraction digits, as the server
// prints it: the binlog decoder leaves out a fraction of zero.
func fraction(fsp int) func(any) (*string, error) {
	raw := scalar(false, nil)
	return func(v any) (*string, error) {
		if s, ok := v.(string); ok && !strings.Contains(s, ".") {
			v = s + "." + strings.Repeat("0", fsp)
		}
		return raw(v)
	}
}

// year renders YEAR as its four digits: the binlog gives 0 for the year
// 0000, which as the text '0' a server would read as 2000.
func year(v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	n, ok := v.(int)
	if !ok {
		return nil, fmt.Errorf("unexpected %T for year", v)
	}
	s := fmt.Sprintf("%04d", n)
	return &s, nil
}

// latin1 is MySQL's latin1: Windows-1252, with the five bytes that code page
// leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) mapped to the same C1 code
// points, so that every byte survives the trip through UTF-8.
var latin1 = func() (t [256]rune) {
	for i := range t {
		t[i] = charmap.Windows1252.DecodeByte(byte(i))
		if t[i] == utf8.RuneError {
			t[i] = rune(i)
		}
	}
	return t
}()

// ascii reports whether s is 7-bit: the same bytes in latin1 and UTF-8.
func ascii[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func latin1ToUTF8(b []byte) ([]byte, error) {
	if ascii(b) {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(b)/4)
	for _, c := range b {
		out = utf8.AppendRune(out, latin1[c])
	}
	return out, nil
}
