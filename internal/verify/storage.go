package verify

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/progress"
)

// Table is the comparison of one table.
type Table struct {
	Name                     string
	PrimaryRows, StandbyRows int64
	// Chunks is how many key ranges were compared; Differing how many of
	// them still differed after re-checking.
	Chunks, Differing int
	// Diff lists, for the chunks that differ, the rows that differ (at
	// most maxDiff), each keyed by its primary key and with what is wrong.
	Diff []string
	// Columns names how the two sides' column lists differ ("" when alike):
	// the rows are then not compared.
	Columns                        string
	MissingPrimary, MissingStandby bool
}

// OK reports whether both sides hold the same rows.
func (t Table) OK() bool {
	return !t.MissingPrimary && !t.MissingStandby && t.Columns == "" && t.Differing == 0 && t.PrimaryRows == t.StandbyRows
}

// AllEqual reports whether there are tables and all are equal.
func AllEqual(ts []Table) bool {
	for _, t := range ts {
		if !t.OK() {
			return false
		}
	}
	return len(ts) > 0
}

// Databases compares every base table of the given databases on both
// sides, chunk by chunk (see compareTable). A chunk that differs is
// compared again until it is equal or settle has passed: a standby that
// takes writes may be catching up. progress (nil: none) gets a progress
// bar or lines, in primary rows.
func Databases(ctx context.Context, primary, standby *sql.DB, dbs []string, settle time.Duration, progressOut io.Writer) ([]Table, error) {
	pt, err := cacherule.BaseTables(ctx, primary, dbs)
	if err != nil {
		return nil, fmt.Errorf("list primary tables: %w", err)
	}
	st, err := cacherule.BaseTables(ctx, standby, dbs)
	if err != nil {
		return nil, fmt.Errorf("list standby tables: %w", err)
	}
	meter, err := newMeter(ctx, primary, progressOut, "verify storage", pt)
	if err != nil {
		return nil, err
	}
	names := append(slices.Clone(pt), st...)
	slices.Sort(names)
	names = slices.Compact(names)
	var out []Table
	for _, n := range names {
		t := Table{Name: n, MissingPrimary: !slices.Contains(pt, n), MissingStandby: !slices.Contains(st, n)}
		if !t.MissingPrimary && !t.MissingStandby {
			if err := compareTable(ctx, primary, standby, &t, settle, meter); err != nil {
				return nil, fmt.Errorf("compare %s: %w", n, err)
			}
		}
		out = append(out, t)
	}
	meter.Done()
	return out, nil
}

// chunkRows is how many rows, by primary key, one chunk compares.
const chunkRows = 1000

const maxDiff = 20

// column is what the comparison needs of a column.
type column struct {
	name, dataType string
	key            bool
}

// tableDef is a table's columns and its primary key, in key order.
type tableDef struct {
	quoted string
	cols   []column
	key    []column
}

// names are the table's columns, invisible ones too.
func (d tableDef) names() []string {
	n := make([]string, len(d.cols))
	for i, c := range d.cols {
		n[i] = c.name
	}
	return n
}

func describe(ctx context.Context, db *sql.DB, name string) (tableDef, error) {
	schema, table, _ := strings.Cut(name, ".")
	def := tableDef{quoted: quoted(name)}
	rows, err := db.QueryContext(ctx, `SELECT c.COLUMN_NAME, c.DATA_TYPE, k.ORDINAL_POSITION
		FROM information_schema.COLUMNS c LEFT JOIN information_schema.KEY_COLUMN_USAGE k
		  ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
		WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION`, schema, table)
	if err != nil {
		return def, fmt.Errorf("read the columns of %s: %w", name, err)
	}
	defer rows.Close()
	keyAt := map[int64]column{}
	for rows.Next() {
		var c column
		var pos sql.NullInt64
		if err := rows.Scan(&c.name, &c.dataType, &pos); err != nil {
			return def, err
		}
		c.key = pos.Valid
		def.cols = append(def.cols, c)
		if pos.Valid {
			keyAt[pos.Int64] = c
		}
	}
	for i := int64(1); i <= int64(len(keyAt)); i++ {
		def.key = append(def.key, keyAt[i])
	}
	return def, rows.Err()
}

func (d tableDef) signature() string {
	var parts []string
	for _, c := range d.cols {
		parts = append(parts, c.name+" "+c.dataType)
	}
	return strings.Join(parts, ", ")
}

// checksumSQL sums a CRC32 of every row's values, with a NULL flag per
// column (CONCAT_WS skips NULLs); FLOAT as DOUBLE, whose text keeps its bits.
func (d tableDef) checksumSQL() string {
	var vals, nulls []string
	for _, c := range d.cols {
		v := mysql.Quote(c.name)
		if c.dataType == "float" {
			v = "CAST(" + v + " AS DOUBLE)"
		}
		vals = append(vals, "CAST("+v+" AS BINARY)")
		nulls = append(nulls, "ISNULL("+mysql.Quote(c.name)+")")
	}
	return "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(CHAR(31), " + strings.Join(vals, ", ") + ", CONCAT(" + strings.Join(nulls, ", ") + ")))), 0) FROM " + d.quoted
}

// keyList is the primary key as a row constructor: (a, b).
func (d tableDef) keyList() string { return "(" + d.keyColumns() + ")" }

// keyColumns is the primary key's columns: a, b.
func (d tableDef) keyColumns() string {
	var ks []string
	for _, c := range d.key {
		ks = append(ks, mysql.Quote(c.name))
	}
	return strings.Join(ks, ", ")
}

// chunk is a key range (lo, hi]; nil ends are open.
type chunk struct{ lo, hi []any }

// where is the chunk's condition and arguments ("" for a whole table).
func (d tableDef) where(c chunk) (string, []any) {
	if c.lo == nil && c.hi == nil {
		return "", nil
	}
	var conds []string
	var args []any
	marks := "(" + strings.Repeat("?, ", len(d.key)-1) + "?)"
	if c.lo != nil {
		conds, args = append(conds, d.keyList()+" > "+marks), append(args, c.lo...)
	}
	if c.hi != nil {
		conds, args = append(conds, d.keyList()+" <= "+marks), append(args, c.hi...)
	}
	return strings.Join(conds, " AND "), args
}

// nextBound is the key ending the chunk that starts after lo: the
// chunkRows-th key on the primary, nil when fewer are left.
func (d tableDef) nextBound(ctx context.Context, db *sql.DB, lo []any) ([]any, error) {
	cond, args := d.where(chunk{lo: lo})
	if cond != "" {
		cond = " WHERE " + cond
	}
	q := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT 1 OFFSET %d", d.keyColumns(), d.quoted, cond, d.keyColumns(), chunkRows-1)
	raw := make([]sql.RawBytes, len(d.key))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	// Text keys go back as text, so that they compare in the column's
	// collation, as ORDER BY sorted them; binary ones as bytes.
	hi := make([]any, len(raw))
	for i, v := range raw {
		if binaryType(d.key[i].dataType) {
			hi[i] = append([]byte(nil), v...)
		} else {
			hi[i] = string(v)
		}
	}
	return hi, nil
}

func binaryType(t string) bool {
	return slices.Contains([]string{"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"}, t)
}

// sum is a chunk's row count and checksum on one side.
type sum struct{ rows, crc int64 }

func (d tableDef) sum(ctx context.Context, db *sql.DB, c chunk) (sum, error) {
	q := d.checksumSQL()
	cond, args := d.where(c)
	if cond != "" {
		q += " WHERE " + cond
	}
	var s sum
	err := db.QueryRowContext(ctx, q, args...).Scan(&s.rows, &s.crc)
	return s, err
}

// compareTable compares a table in chunks of chunkRows rows by primary key
// (a table without one is one chunk): row count and a checksum of the rows
// on each side. Chunks that differ are compared again until they are
// equal or settle has passed; the rows of those still differing are
// compared one by one and named.
func compareTable(ctx context.Context, primary, standby *sql.DB, t *Table, settle time.Duration, meter *progress.Meter) error {
	pd, err := describe(ctx, primary, t.Name)
	if err != nil {
		return err
	}
	sd, err := describe(ctx, standby, t.Name)
	if err != nil {
		return err
	}
	if p, s := pd.signature(), sd.signature(); p != s {
		t.Columns = fmt.Sprintf("columns differ: primary (%s), standby (%s)", p, s)
		return nil
	}
	type result struct {
		c    chunk
		p, s sum
	}
	var differing []result
	compare := func(c chunk) (result, error) {
		r := result{c: c}
		var err error
		if r.p, err = pd.sum(ctx, primary, c); err != nil {
			return r, fmt.Errorf("primary: %w", err)
		}
		if r.s, err = pd.sum(ctx, standby, c); err != nil {
			return r, fmt.Errorf("standby: %w", err)
		}
		return r, nil
	}
	var lo []any
	for {
		c := chunk{lo: lo}
		if len(pd.key) > 0 {
			if c.hi, err = pd.nextBound(ctx, primary, lo); err != nil {
				return fmt.Errorf("primary: %w", err)
			}
		}
		r, err := compare(c)
		if err != nil {
			return err
		}
		t.Chunks++
		t.PrimaryRows += r.p.rows
		t.StandbyRows += r.s.rows
		meter.Add(r.p.rows)
		if r.p != r.s {
			differing = append(differing, r)
		}
		if c.hi == nil {
			break
		}
		lo = c.hi
	}
	deadline := time.Now().Add(settle)
	for len(differing) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		still := differing[:0]
		for _, old := range differing {
			r, err := compare(old.c)
			if err != nil {
				return err
			}
			t.PrimaryRows += r.p.rows - old.p.rows
			t.StandbyRows += r.s.rows - old.s.rows
			if r.p != r.s {
				still = append(still, r)
			}
		}
		differing = still
	}
	t.Differing = len(differing)
	for _, r := range differing {
		if len(t.Diff) >= maxDiff {
			break
		}
		d, err := diffRows(ctx, primary, standby, pd, r.c)
		if err != nil {
			return err
		}
		t.Diff = append(t.Diff, d[:min(len(d), maxDiff-len(t.Diff))]...)
	}
	return nil
}

// diffRows compares a chunk row by row, keyed by the primary key (or the
// whole row for a table without one), and names the rows that differ.
func diffRows(ctx context.Context, primary, standby *sql.DB, d tableDef, c chunk) ([]string, error) {
	p, err := rowDigests(ctx, primary, d, c)
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	s, err := rowDigests(ctx, standby, d, c)
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	var diff []string
	for k, pr := range p {
		switch sr, ok := s[k]; {
		case !ok:
			diff = append(diff, k+": missing on the standby")
		default:
			if d := rowDiff(pr, sr); d != "" {
				diff = append(diff, k+": "+d)
			}
		}
	}
	for k := range s {
		if _, ok := p[k]; !ok {
			diff = append(diff, k+": only on the standby")
		}
	}
	slices.Sort(diff)
	return diff, nil
}

// rowDiff names the columns in which two versions of a row differ, with
// both values; "" when they are equal.
func rowDiff(p, s []string) string {
	var out []string
	for i := range max(len(p), len(s)) {
		pv, sv := "(none)", "(none)"
		if i < len(p) {
			pv = p[i]
		}
		if i < len(s) {
			sv = s[i]
		}
		if pv != sv {
			out = append(out, "primary "+pv+", standby "+sv)
		}
	}
	return strings.Join(out, "; ")
}

// rowDigests maps each row of a chunk, by its key, to its columns as
// "name=value".
func rowDigests(ctx context.Context, db *sql.DB, d tableDef, c chunk) (map[string][]string, error) {
	out := make(map[string][]string)
	cond, args := d.where(c)
	err := cacherule.ScanRows(ctx, db, d.quoted, d.names(), cond, args, func(r cacherule.Row) error {
		var key, all []string
		for i, n := range r.Names {
			v := "NULL"
			if r.Values[i] != nil {
				v = fmt.Sprintf("%q", r.Values[i])
			}
			all = append(all, n+"="+v)
			if slices.ContainsFunc(d.key, func(k column) bool { return k.name == n }) {
				key = append(key, n+"="+v)
			}
		}
		if len(key) == 0 {
			key = all
		}
		out[strings.Join(key, ",")] = all
		return nil
	})
	return out, err
}

func quoted(name string) string {
	db, t, _ := strings.Cut(name, ".")
	return mysql.QuoteTable(db, t)
}
