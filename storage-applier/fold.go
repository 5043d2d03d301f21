package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Folding. A standby transaction covers several primary transactions and
// readers see it whole, so the states between them are invisible anyway: on
// a table where it is safe, the group's changes are folded to their net
// effect per primary key and sent at the group's commit as two statements,
// one DELETE of every key the standby must hold before the group and one
// multi-row INSERT of every key the group leaves present. Both check what
// they find: the DELETE must remove exactly the keys expected present (a
// missing one means the standby diverged), the INSERT fails on a key
// expected absent; either failure makes the applier apply the range again
// carefully, row by row, which names the row. Safe means (standbyTable.
// foldable): InnoDB, a primary key of exact types, no other unique key, no
// foreign key in or out, no trigger, no CHECK constraint: then no change
// depends on the order of the others.

// fold is one group's folded changes.
type fold struct {
	tables []*foldTable // in the order of their first change
	rows   int          // keys held
	bytes  int          // values held, roughly
	id     []byte       // entry's scratch
}

// foldTable is one table's folded changes.
type foldTable struct {
	name    string // quoted db.table
	columns []schemas.Column
	keyCols []schemas.Column
	keys    map[string]*foldKey
	order   []string // keys in the order of their first change
}

// foldKey is one primary key's net change.
type foldKey struct {
	key     []any // its values
	existed bool  // the standby holds it before the group
	final   []any // the stored columns it ends with; nil: absent
}

// table returns the folded changes of r's table, started if new.
func (f *fold) table(r *schemas.Record, t *standbyTable) *foldTable {
	name := mysql.QuoteTable(r.Database, r.Table)
	for _, ft := range f.tables {
		if ft.name == name {
			return ft
		}
	}
	ft := &foldTable{name: name, columns: t.stored(r), keyCols: r.KeyColumns(), keys: make(map[string]*foldKey)}
	f.tables = append(f.tables, ft)
	return ft
}

// add folds one row change in.
func (f *fold) add(r *schemas.Record, t *standbyTable) error {
	ft := f.table(r, t)
	var after []any
	if r.Op != schemas.OpDelete {
		after = make([]any, 0, len(ft.columns))
		for j, name := range ft.columns {
			// the record's own column: it says how its value is written
			// (records of one table list them in the same order)
			i := j
			if i >= len(r.Columns) || r.Columns[i].Name != name.Name {
				i = slices.IndexFunc(r.Columns, func(c schemas.Column) bool { return c.Name == name.Name })
			}
			if i < 0 {
				return fmt.Errorf("no column %s in the record", name.Name)
			}
			v, err := value(r, r.After, r.Columns[i])
			if err != nil {
				return err
			}
			after = append(after, v)
			if s, ok := v.(string); ok {
				f.bytes += len(s)
			} else if b, ok := v.([]byte); ok {
				f.bytes += len(b)
			}
		}
	}
	switch r.Op {
	case schemas.OpInsert, schemas.OpSnapshot:
		k, err := ft.entry(f, r, r.After, false)
		if err != nil {
			return err
		}
		k.final = after
	case schemas.OpDelete:
		k, err := ft.entry(f, r, r.Before, true)
		if err != nil {
			return err
		}
		k.final = nil
	case schemas.OpUpdate:
		from, err := ft.entry(f, r, r.Before, true)
		if err != nil {
			return err
		}
		to, err := ft.entry(f, r, r.After, false)
		if err != nil {
			return err
		}
		from.final, to.final = nil, after // the same key when the update keeps it
	default:
		return fmt.Errorf("op %q is not a row change", r.Op)
	}
	return nil
}

// entry returns a key's net change, started with what the standby must
// hold before the group when the key is new to it.
func (ft *foldTable) entry(f *fold, r *schemas.Record, img schemas.Row, existed bool) (*foldKey, error) {
	// The key's identity: each value's length and text as the record has
	// it (n for NULL), so that two tuples of values never share one.
	f.id = f.id[:0]
	for _, c := range ft.keyCols {
		if v := img[c.Name]; v != nil {
			f.id = append(append(strconv.AppendInt(f.id, int64(len(*v)), 10), ':'), *v...)
		} else {
			f.id = append(f.id, 'n')
		}
	}
	if k, ok := ft.keys[string(f.id)]; ok {
		return k, nil
	}
	key := make([]any, len(ft.keyCols))
	for i, c := range ft.keyCols {
		v, err := value(r, img, c)
		if err != nil {
			return nil, err
		}
		key[i] = v
	}
	id := string(f.id)
	k := &foldKey{key: key, existed: existed}
	ft.keys[id] = k
	ft.order = append(ft.order, id)
	f.rows++
	return k, nil
}

// foldChunk bounds the rows of one folded statement.
const foldChunk = 1000

// statements are the folded changes as statements, each checking what it
// changed, and empties the fold.
func (f *fold) statements() []stmt {
	var out []stmt
	for _, ft := range f.tables {
		var gone, present []*foldKey
		for _, id := range ft.order {
			k := ft.keys[id]
			if k.existed {
				gone = append(gone, k)
			}
			if k.final != nil {
				present = append(present, k)
			}
		}
		for len(gone) > 0 {
			chunk := gone[:min(foldChunk, len(gone))]
			gone = gone[len(chunk):]
			out = append(out, ft.delete(chunk))
		}
		for len(present) > 0 {
			chunk := present[:min(foldChunk, len(present))]
			present = present[len(chunk):]
			out = append(out, ft.insert(chunk))
		}
	}
	f.tables, f.rows, f.bytes = nil, 0, 0
	return out
}

// delete removes keys the standby must hold, all of them.
func (ft *foldTable) delete(keys []*foldKey) stmt {
	q, args := rows("DELETE FROM "+ft.name+" WHERE ("+quoted(ft.keyCols)+") IN (", ")", keys, func(k *foldKey) []any { return k.key })
	return checked(q, args, "deletes", ft.name, len(keys), func(n int64) error {
		return fmt.Errorf("the group changes %d rows of %s that the standby must hold, it holds %d of them: the standby has diverged (applying carefully names the row)", len(keys), ft.name, n)
	})
}

// insert writes the rows the group leaves present.
func (ft *foldTable) insert(keys []*foldKey) stmt {
	q, args := rows("INSERT INTO "+ft.name+" ("+quoted(ft.columns)+") VALUES ", "", keys, func(k *foldKey) []any { return k.final })
	return checked(q, args, "inserts", ft.name, len(keys), func(n int64) error {
		return fmt.Errorf("the folded insert of %d rows into %s wrote %d", len(keys), ft.name, n)
	})
}

// quoted lists column names, quoted.
func quoted(cols []schemas.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = mysql.Quote(c.Name)
	}
	return strings.Join(names, ", ")
}

// rows is head, one (?, ...) tuple per key of the values of that key, and
// tail; with the values in order.
func rows(head, tail string, keys []*foldKey, values func(*foldKey) []any) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(head)
	for i, k := range keys {
		v := values(k)
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(v)), ", ") + ")")
		args = append(args, v...)
	}
	b.WriteString(tail)
	return b.String(), args
}

// checked is a folded statement whose every row must be changed: another
// count is what mismatch says.
func checked(q string, args []any, what, table string, want int, mismatch func(n int64) error) stmt {
	return stmt{query: q, args: args, check: func(n int64, err error) error {
		if err != nil {
			return mysql.Classify(fmt.Errorf("apply the folded %s on %s: %w", what, table, err))
		}
		if n != int64(want) {
			return mismatch(n)
		}
		return nil
	}}
}
