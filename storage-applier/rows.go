package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

// rowStatement is the SQL and arguments that apply one row change to the
// standby table t. Generated columns are left for the standby to compute.
func rowStatement(r *schemas.Record, t *standbyTable) (string, []any, error) {
	var (
		b    strings.Builder
		args []any
	)
	add := func(row schemas.Row, c schemas.Column) error {
		v, err := value(r, row, c)
		args = append(args, v)
		return err
	}
	stored := t.stored(r)
	table := mysql.QuoteTable(r.Database, r.Table)
	switch r.Op {
	case schemas.OpInsert, schemas.OpSnapshot:
		fmt.Fprintf(&b, "INSERT INTO %s (", table)
		for i, c := range stored {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(mysql.Quote(c.Name))
			if err := add(r.After, c); err != nil {
				return "", nil, err
			}
		}
		b.WriteString(") VALUES (" + strings.Repeat("?, ", len(stored)-1) + "?)")
	case schemas.OpUpdate:
		// Only the columns the change changed: less for the standby to
		// parse and write (a change of nothing sets them all). A column
		// the standby would set itself (ON UPDATE) is always set, to the
		// primary's value, as a replica writes the whole after image.
		set := slices.DeleteFunc(slices.Clone(stored), func(c schemas.Column) bool {
			return sameValue(r.Before, r.After, c.Name) && !t.onUpdate[c.Name]
		})
		if len(set) == 0 {
			set = stored
		}
		fmt.Fprintf(&b, "UPDATE %s SET ", table)
		for i, c := range set {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(mysql.Quote(c.Name) + " = ?")
			if err := add(r.After, c); err != nil {
				return "", nil, err
			}
		}
		if err := where(&b, r, stored, add); err != nil {
			return "", nil, err
		}
	case schemas.OpDelete:
		fmt.Fprintf(&b, "DELETE FROM %s", table)
		if err := where(&b, r, stored, add); err != nil {
			return "", nil, err
		}
	default:
		return "", nil, fmt.Errorf("op %q is not a row change", r.Op)
	}
	return b.String(), args, nil
}

// value is a column's value in a row image as a statement argument: nil
// for NULL, raw bytes for binary columns, text for the others but FLOAT.
// A FLOAT goes as the exact double of its single-precision value: its
// shortest text read as a DOUBLE would not equal the stored value, and
// MySQL refuses the text of the largest FLOATs as out of range.
func value(r *schemas.Record, row schemas.Row, c schemas.Column) (any, error) {
	if c.Binary {
		v, ok, err := r.Bytes(row, c)
		if err != nil || !ok {
			return nil, err
		}
		return v, nil
	}
	// Text goes as the record's own string: no copy.
	v := row[c.Name]
	switch {
	case v == nil:
		return nil, nil
	case c.Type == "float":
		f, err := strconv.ParseFloat(*v, 32)
		if err != nil {
			return nil, fmt.Errorf("FLOAT column %s: %w", c.Name, err)
		}
		if f == 0 {
			return *v, nil // a number literal -0 is the integer 0: the text keeps the sign
		}
		return f, nil
	}
	return *v, nil
}

// stored are the record's columns the standby stores: generated ones are
// the standby's to compute.
func (t *standbyTable) stored(r *schemas.Record) []schemas.Column {
	if len(t.generated) == 0 {
		return r.Columns
	}
	return slices.DeleteFunc(slices.Clone(r.Columns), func(c schemas.Column) bool { return t.generated[c.Name] })
}

// sameValue reports whether a column holds the same value (or NULL) in
// both images; a column missing from the before image counts as changed.
func sameValue(before, after schemas.Row, col string) bool {
	b, ok := before[col]
	if !ok {
		return false
	}
	a := after[col]
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// where matches the row by its primary key, or, for a table without one, by
// its whole stored before image (NULL-safe) and one row only, as MySQL
// replication does.
func where(b *strings.Builder, r *schemas.Record, stored []schemas.Column, add func(schemas.Row, schemas.Column) error) error {
	cols := r.KeyColumns()
	limit := ""
	if len(cols) == 0 {
		cols, limit = stored, " LIMIT 1"
	}
	b.WriteString(" WHERE ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(mysql.Quote(c.Name) + " <=> ?")
		if err := add(r.Before, c); err != nil {
			return err
		}
	}
	b.WriteString(limit)
	return nil
}
