// Package cacherule maps table rows to Redis keys and values, as the cache
// rules of the config say. The cache-applier uses it to write, and the
// verifier to compute what the cache should hold, so the two cannot drift.
package cacherule

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Row is one row: column names, raw values (nil is NULL) and which columns
// hold binary data. Values are read, never written: FromRecord's share the
// record's strings.
type Row struct {
	Names  []string
	Values [][]byte
	Binary []bool
}

func (r Row) get(col string) (v []byte, null, found bool) {
	for i, n := range r.Names {
		if n == col {
			return r.Values[i], r.Values[i] == nil, true
		}
	}
	return nil, false, false
}

// FromRecord reads a record's row image as a Row: the columns SELECT *
// shows, as a fill or a rebuild from the standby reads them (ScanTable).
func FromRecord(rec *schemas.Record, img schemas.Row) (Row, error) {
	n := len(rec.Columns)
	row := Row{Names: make([]string, 0, n), Values: make([][]byte, 0, n), Binary: make([]bool, 0, n)}
	for _, c := range rec.Columns {
		if c.Invisible {
			continue
		}
		s := img[c.Name]
		var v []byte // nil: NULL
		switch {
		case s == nil:
		case c.Binary:
			var err error
			if v, _, err = rec.Bytes(img, c); err != nil {
				return Row{}, err
			}
		default:
			// the record's text as it is: every change of the cache
			// passes here, and a copy would be thrown away at once
			v = unsafe.Slice(unsafe.StringData(*s), len(*s))
		}
		if v == nil && s != nil {
			v = []byte{} // empty, not NULL
		}
		row.Names, row.Values, row.Binary = append(row.Names, c.Name), append(row.Values, v), append(row.Binary, c.Binary)
	}
	return row, nil
}

// Image is the row as a record image of cols, the columns in the row's
// order (see mysql.Column.Record).
func (r Row) Image(cols []schemas.Column) schemas.Row {
	img := make(schemas.Row, len(cols))
	for i, c := range cols {
		if r.Values[i] != nil {
			img[c.Name] = schemas.EncodeValue(r.Values[i], c.Binary)
		} else {
			img[c.Name] = nil
		}
	}
	return img
}

// RecordImage is Image for a record made from SQL rows: a value of a
// column whose stored[i] names one of MariaDB's INET4, INET6 and UUID types
// (mysql.Column.Stored; "" for the others), which SQL reads as text, is
// carried as the binlog carries it, its stored bytes.
func (r Row) RecordImage(cols []schemas.Column, stored []string) (schemas.Row, error) {
	img := r.Image(cols)
	for i, kind := range stored {
		if kind == "" || r.Values[i] == nil {
			continue
		}
		b, err := mysql.StoredBytes(kind, r.Values[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", cols[i].Name, err)
		}
		img[cols[i].Name] = schemas.EncodeValue(b, true)
	}
	return img, nil
}

// Rule is a compiled cache rule.
type Rule struct {
	config.Rule
	prefix  string
	columns map[string]bool // projection; nil keeps every column
	// keyColumns are the columns the key templates name.
	keyColumns []string
}

// Refresh reports whether the rule writes rows (rather than only evicting).
func (r *Rule) Refresh() bool { return r.Action == "refresh" }

// Set is every rule of the config, matched by table.
type Set struct {
	rules []*Rule
	byTbl map[string][]*Rule
}

// Compile builds the rules of the cache section (validated by config) that
// may cover a table of the databases dbs, the replicated ones (every rule
// when dbs is empty: every database is). The rules of another shard's
// databases are not this pipeline's: its versions are of another log.
func Compile(c config.Cache, dbs []string) *Set {
	s := &Set{byTbl: make(map[string][]*Rule)}
	for _, cr := range c.Rules {
		if !cr.InDatabases(dbs) {
			continue
		}
		r := &Rule{Rule: cr, prefix: c.KeyPrefix}
		for _, tpl := range cr.Keys {
			for _, col := range config.KeyColumns(tpl) {
				if !slices.Contains(r.keyColumns, col) {
					r.keyColumns = append(r.keyColumns, col)
				}
			}
		}
		if len(cr.Columns) > 0 {
			r.columns = make(map[string]bool)
			for _, col := range cr.Columns {
				r.columns[col] = true
			}
		}
		s.rules = append(s.rules, r)
	}
	return s
}

// Rules lists every rule.
func (s *Set) Rules() []*Rule { return s.rules }

// Match returns the rules for database.table; rows of tables without a rule
// cost one map lookup.
func (s *Set) Match(db, table string) []*Rule {
	name := db + "." + table
	if rs, ok := s.byTbl[name]; ok {
		return rs
	}
	var rs []*Rule
	for _, r := range s.rules {
		if r.Matches(name) {
			rs = append(rs, r)
		}
	}
	s.byTbl[name] = rs
	return rs
}

// Matches reports whether the rule covers the table "db.table".
func (r *Rule) Matches(name string) bool {
	ok, _ := path.Match(r.Table, name)
	return ok
}

// SameKeys reports whether two images of a row give the same keys: every
// column the key templates name holds the same value (or NULL) in both.
// An update that changes none of them needs no look at its before image.
func (r *Rule) SameKeys(a, b schemas.Row) bool {
	for _, col := range r.keyColumns {
		va, inA := a[col]
		vb, inB := b[col]
		if !inA || !inB || (va == nil) != (vb == nil) || (va != nil && *va != *vb) {
			return false
		}
	}
	return true
}

// Render renders the rule's key templates for a row. A key whose columns
// include a NULL is not rendered: there is no such key.
func (r *Rule) Render(row Row) ([]string, error) {
	keys := make([]string, 0, len(r.Rule.Keys))
next:
	for _, tpl := range r.Rule.Keys {
		var b strings.Builder
		b.WriteString(r.prefix)
		rest := tpl
		for {
			open := strings.IndexByte(rest, '{')
			if open < 0 {
				b.WriteString(rest)
				break
			}
			end := strings.IndexByte(rest[open:], '}') + open
			col := rest[open+1 : end]
			v, null, found := row.get(col)
			if !found {
				return nil, fmt.Errorf("cache rule for %s: key template %s names column %q, which the table does not have", r.Table, tpl, col)
			}
			if null {
				continue next
			}
			b.WriteString(rest[:open])
			b.Write(v)
			rest = rest[end+1:]
		}
		keys = append(keys, b.String())
	}
	return keys, nil
}

// Hash is the row as Redis hash field/value pairs: projected columns, NULLs
// left out, binary values as raw bytes.
func (r *Rule) Hash(row Row) []any {
	out := make([]any, 0, 2*len(row.Names))
	for i, n := range row.Names {
		if row.Values[i] == nil || (r.columns != nil && !r.columns[n]) {
			continue
		}
		out = append(out, n, row.Values[i])
	}
	return out
}

// JSON is the row as one JSON object: projected columns, NULL as null,
// binary values as base64.
func (r *Rule) JSON(row Row) string {
	m := make(map[string]*string, len(row.Names))
	for i, n := range row.Names {
		if r.columns != nil && !r.columns[n] {
			continue
		}
		if row.Values[i] != nil {
			s := string(row.Values[i])
			if row.Binary[i] {
				s = base64.StdEncoding.EncodeToString(row.Values[i])
			}
			m[n] = &s
		} else {
			m[n] = nil
		}
	}
	b, _ := json.Marshal(m) // cannot fail: strings only
	return string(b)
}

// EachKey hands fn every key in Redis (every master of a cluster) that one
// of the rule's key templates matches (found by SCAN, so keys of another
// rule whose templates overlap these are handed too).
func (r *Rule) EachKey(ctx context.Context, rdb redis.UniversalClient, fn func(key string) error) error {
	for _, tpl := range r.Rule.Keys {
		if err := redisconn.Scan(ctx, rdb, r.pattern(tpl), fn); err != nil {
			return fmt.Errorf("the keys of %s: %w", tpl, err)
		}
	}
	return nil
}

// pattern is a Redis SCAN pattern matching every key of a template.
func (r *Rule) pattern(tpl string) string {
	var b strings.Builder
	b.WriteString(r.prefix)
	inVar := false
	for _, ch := range tpl {
		switch {
		case ch == '{':
			inVar = true
			b.WriteByte('*')
		case ch == '}':
			inVar = false
		case inVar:
		case strings.ContainsRune(`*?[]\`, ch):
			b.WriteByte('\\')
			b.WriteRune(ch)
		default:
			b.WriteRune(ch)
		}
	}
	return b.String()
}
