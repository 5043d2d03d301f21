package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Foreign keys on the standby. Each row is applied with the
// foreign_key_checks of the primary's session (the rows event's flag), as a
// native replica applies it, so the standby runs the ON DELETE and ON UPDATE
// actions the primary ran. InnoDB does not log the changes those actions
// make, so no primary record carries them: before the applier changes a
// row that foreign keys reference, it finds the child rows their actions
// will change (in the same standby transaction), reads them again after the
// change, and hands what changed to the standby log as changes the standby
// made itself (Standby.Cascade), which the cache needs as much as any.

// foreignKey is a foreign key that references a table.
type foreignKey struct {
	name               string // "db.table.constraint" of the child table
	db, table          string // the child table
	cols, refCols      []string
	onDelete, onUpdate string // DELETE_RULE, UPDATE_RULE
}

// acts reports whether a referential action changes child rows.
func acts(rule string) bool { return rule == "CASCADE" || rule == "SET NULL" }

// referencing lists the foreign keys whose actions change rows when a row
// of the table changes.
func (s *standbyTables) referencing(ctx context.Context, db, table string) ([]foreignKey, error) {
	if fks, ok := s.refs[db+"."+table]; ok {
		return fks, nil
	}
	rows, err := s.db.QueryContext(ctx, sqlReferencing, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the foreign keys that reference %s.%s on the standby: %w", db, table, err)
	}
	defer rows.Close()
	var fks []foreignKey
	for rows.Next() {
		var fk foreignKey
		var constraint, col, ref string
		if err := rows.Scan(&fk.db, &fk.table, &constraint, &fk.onDelete, &fk.onUpdate, &col, &ref); err != nil {
			return nil, err
		}
		fk.name = fk.db + "." + fk.table + "." + constraint
		if n := len(fks); n > 0 && fks[n-1].name == fk.name {
			fks[n-1].cols, fks[n-1].refCols = append(fks[n-1].cols, col), append(fks[n-1].refCols, ref)
			continue
		}
		fk.cols, fk.refCols = []string{col}, []string{ref}
		fks = append(fks, fk)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	fks = slices.DeleteFunc(fks, func(fk foreignKey) bool { return !acts(fk.onDelete) && !acts(fk.onUpdate) })
	s.refs[db+"."+table] = fks
	return fks, nil
}

// changing is a row whose change may set off foreign-key actions.
type changing struct {
	db, table string
	before    map[string][]byte // raw values; nil is NULL
	deleted   bool
	changed   []string // for an update: the columns it changes
}

// cascaded is a child row that a foreign key's action will change.
type cascaded struct {
	t         *standbyTable
	db, table string
	fk        *foreignKey
	action    string // "ON DELETE CASCADE", ...
	before    cacherule.Row
}

// cascades finds, before the change of record r is applied, every row the
// actions of foreign keys will change, level after level. Most tables have
// none: then it reads nothing and sends nothing. at names the record, for
// errors.
func (a *applier) cascades(ctx context.Context, r *schemas.Record, at func() string) ([]*cascaded, error) {
	if r.Op != schemas.OpDelete && r.Op != schemas.OpUpdate {
		return nil, nil
	}
	if fks, err := a.tables.referencing(ctx, r.Database, r.Table); err != nil || len(fks) == 0 {
		return nil, wrap(at, err)
	}
	// the child rows as they are before the change: what came before it
	// in the transaction first
	a.tx.start()
	if err := a.flush(ctx); err != nil {
		return nil, err
	}
	first, err := changeOf(r)
	if err != nil {
		return nil, wrap(at, err)
	}
	queue := []changing{first}
	seen := make(map[string]bool)
	var out []*cascaded
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		fks, err := a.tables.referencing(ctx, n.db, n.table)
		if err != nil {
			return nil, wrap(at, err)
		}
		for i := range fks {
			fk := &fks[i]
			rule, on := fk.onUpdate, "ON UPDATE "
			if n.deleted {
				rule, on = fk.onDelete, "ON DELETE "
			}
			if !acts(rule) || (!n.deleted && !slices.ContainsFunc(fk.refCols, func(c string) bool { return slices.Contains(n.changed, c) })) {
				continue
			}
			where, args := make([]string, len(fk.cols)), make([]any, len(fk.cols))
			for j, c := range fk.cols {
				v := n.before[fk.refCols[j]]
				if v == nil {
					break // NULL references nothing
				}
				where[j], args[j] = mysql.Quote(c)+" = ?", v
			}
			if slices.Contains(args, nil) {
				continue
			}
			t, err := a.tables.get(ctx, fk.db, fk.table)
			if err != nil {
				return nil, wrap(at, err)
			}
			err = cacherule.ScanRows(ctx, a.tx.conn, mysql.QuoteTable(fk.db, fk.table), columnNames(t.record), strings.Join(where, " AND "), args, func(row cacherule.Row) error {
				row.Values = slices.Clone(row.Values) // ScanRows reuses the slice
				id := fk.db + "." + fk.table + "\x00" + rowID(t, row)
				if seen[id] {
					return nil
				}
				seen[id] = true
				out = append(out, &cascaded{t: t, db: fk.db, table: fk.table, fk: fk, action: on + rule, before: row})
				next := changing{db: fk.db, table: fk.table, before: make(map[string][]byte, len(row.Names)), deleted: on+rule == "ON DELETE CASCADE", changed: fk.cols}
				for k, name := range row.Names {
					next.before[name] = row.Values[k]
				}
				queue = append(queue, next)
				return nil
			})
			if err != nil {
				return nil, mysql.Classify(fmt.Errorf("%s: find the rows that foreign key %s changes: %w", at(), fk.name, err))
			}
		}
	}
	return out, nil
}

// changeOf is the change a primary record makes, as raw values.
func changeOf(r *schemas.Record) (changing, error) {
	n := changing{db: r.Database, table: r.Table, before: make(map[string][]byte, len(r.Columns)), deleted: r.Op == schemas.OpDelete}
	for _, c := range r.Columns {
		v, ok, err := r.Bytes(r.Before, c)
		if err != nil {
			return n, service.Permanent(err)
		}
		if ok && v == nil {
			v = []byte{}
		}
		n.before[c.Name] = v
		if r.Op == schemas.OpUpdate && !sameValue(r.Before, r.After, c.Name) {
			n.changed = append(n.changed, c.Name)
		}
	}
	return n, nil
}

// rowID identifies a row of t by its primary key, or by all its values.
func rowID(t *standbyTable, row cacherule.Row) string {
	keyed := slices.ContainsFunc(t.record, func(c schemas.Column) bool { return c.Key })
	var b strings.Builder
	for i, c := range t.record {
		if c.Key || !keyed {
			fmt.Fprintf(&b, "%d:%q,", i, row.Values[i])
		}
	}
	return b.String()
}

// cascaded applies record r (at offset off), queued last, and hands what
// its foreign keys' actions changed to the standby log, by way of
// lockstep.standby_changes in the same standby transaction, for a standby
// log that must get them after a crash too.
func (a *applier) cascaded(ctx context.Context, r *schemas.Record, off int64, cs []*cascaded, at func() string) error {
	if err := a.flush(ctx); err != nil {
		return err // the row's own check names it
	}
	made, err := a.madeBy(ctx, r, off, cs)
	if err != nil {
		return wrap(at, err)
	}
	a.log.Debug("foreign keys changed rows on the standby", "gtid", r.Txn.GTID, "offset", off, "table", r.Name(), "rows", len(made))
	for _, m := range made {
		b, err := schemas.Encode(m)
		if err != nil {
			return service.Permanent(wrap(at, err))
		}
		a.tx.add(stmt{query: sqlInsertChange, args: []any{a.cp.name, off, a.cur.madeCount, b}, check: anyRows})
		a.cur.addMade(m, len(b))
	}
	a.madeThrough = off
	return nil
}

// madeBy reads the cascaded rows again once record r (at offset off) was
// applied and returns what the standby changed, as standby-log records.
func (a *applier) madeBy(ctx context.Context, r *schemas.Record, off int64, cs []*cascaded) ([]*schemas.Record, error) {
	var out []*schemas.Record
	for _, c := range cs {
		before, err := c.before.RecordImage(c.t.record, c.t.storedAs)
		if err != nil {
			return nil, fmt.Errorf("the row foreign key %s changed: %w", c.fk.name, err)
		}
		m := &schemas.Record{SchemaVersion: schemas.SchemaVersion, Op: schemas.OpDelete, Database: c.db, Table: c.table, Columns: c.t.record,
			Before: before, Txn: schemas.Txn{GTID: r.Txn.GTID},
			Source:  schemas.Source{ServerID: r.Source.ServerID, File: r.Source.File, Pos: r.Source.Pos, CommitTimeMS: r.Source.CommitTimeMS},
			Standby: &schemas.Standby{PrimaryOffset: off, Cascade: &schemas.Cascade{ForeignKey: c.fk.name, Action: c.action}}}
		keys := m.KeyColumns()
		if len(keys) > 0 {
			m.Key = make(schemas.Row, len(keys))
			for _, col := range keys {
				m.Key[col.Name] = before[col.Name]
			}
		}
		// The row by its primary key; without one, by the values the
		// action leaves as they were (the first such row: rows alike
		// in them are alike after it too).
		var where []string
		var args []any
		for i, col := range c.t.record {
			if col.Key || (len(keys) == 0 && (c.action == "ON DELETE CASCADE" || !slices.Contains(c.fk.cols, col.Name))) {
				where = append(where, matchColumn(col))
				args = append(args, c.before.Values[i])
			}
		}
		var after schemas.Row
		err = cacherule.ScanRows(ctx, a.tx.conn, mysql.QuoteTable(c.db, c.table), columnNames(c.t.record), strings.Join(where, " AND "), args, func(row cacherule.Row) (err error) {
			after, err = row.RecordImage(c.t.record, c.t.storedAs)
			return err
		})
		if err != nil {
			return nil, mysql.Classify(fmt.Errorf("read the rows foreign key %s changed: %w", c.fk.name, err))
		}
		if after != nil {
			if maps.EqualFunc(before, after, func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }) {
				continue // the action left it as it was
			}
			m.Op, m.After = schemas.OpUpdate, after
		}
		out = append(out, m)
	}
	return out, nil
}

// wrap puts the record's place before an error, if any.
func wrap(at func() string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", at(), err)
}

// matchColumn is the condition that a column holds a value read back from
// the standby (NULL-safe). A FLOAT value is compared as a FLOAT: its text
// read as a DOUBLE would not equal the stored single-precision value.
func matchColumn(c schemas.Column) string {
	if c.Type == "float" {
		return mysql.Quote(c.Name) + " <=> CAST(? AS FLOAT)"
	}
	return mysql.Quote(c.Name) + " <=> ?"
}
