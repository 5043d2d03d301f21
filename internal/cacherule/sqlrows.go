package cacherule

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// Querier is a database or a transaction.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// ScanTable hands every row of a table (a quoted name) to fn in the text
// form records carry (see schemas/README.md), binary columns as raw bytes:
// the columns named, in their order, or with none those SELECT * shows (an
// application's view: no invisible column).
// It reads through a prepared statement: the binary protocol sends FLOAT and
// DOUBLE as their exact bits, which text SELECT output rounds.
// The Row passed to fn is reused; the value slices in it are new each row.
func ScanTable(ctx context.Context, q Querier, table string, cols []string, fn func(Row) error) error {
	return ScanRows(ctx, q, table, cols, "", nil, fn)
}

// ScanRows is ScanTable over the rows that match a WHERE condition (""
// for all) with its arguments.
func ScanRows(ctx context.Context, q Querier, table string, cols []string, where string, args []any, fn func(Row) error) error {
	list := "*"
	if len(cols) > 0 {
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = mysql.Quote(c)
		}
		list = strings.Join(quoted, ", ")
	}
	query := "SELECT " + list + " FROM " + table
	if where != "" {
		query += " WHERE " + where
	}
	stmt, err := q.PrepareContext(ctx, query)
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer stmt.Close()
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	row := Row{Names: make([]string, len(types)), Binary: make([]bool, len(types)), Values: make([][]byte, len(types))}
	year := make([]bool, len(types))
	for i, c := range types {
		row.Names[i] = c.Name()
		row.Binary[i] = slices.Contains([]string{"BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BIT", "VECTOR", "GEOMETRY"}, c.DatabaseTypeName())
		year[i] = c.DatabaseTypeName() == "YEAR"
	}
	raw := make([]sql.RawBytes, len(types))
	dest := make([]any, len(types))
	for i := range raw {
		dest[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, v := range raw {
			switch {
			case v == nil:
				row.Values[i] = nil
			case year[i] && string(v) == "0":
				row.Values[i] = []byte("0000") // as records carry it
			default:
				row.Values[i] = append(make([]byte, 0, len(v)), v...)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BaseTables lists the base tables of the databases given (nil: every
// database but the system ones and lockstep's), as "db.table".
func BaseTables(ctx context.Context, q Querier, dbs []string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return nil, err
		}
		if mysql.Replicated(s, dbs) {
			out = append(out, s+"."+t)
		}
	}
	return out, rows.Err()
}

// Tables lists the base tables of the databases given (nil: every one
// replicated) that the rule's table pattern matches.
func (r *Rule) Tables(ctx context.Context, q Querier, dbs []string) ([]string, error) {
	all, err := BaseTables(ctx, q, dbs)
	return slices.DeleteFunc(all, func(n string) bool { return !r.Matches(n) }), err
}

// Check holds each rule against the tables it matches in a database: every
// column a key template or the projection names must exist. It returns what
// does not fit, and the rules that match no table yet (as "cache.rules[i]
// (pattern)"), which the caller warns about: such tables may come later.
// err is a failure to read the database.
func (s *Set) Check(ctx context.Context, q Querier) (misfits error, unmatched []string, err error) {
	var errs []error
	for i, r := range s.rules {
		at := fmt.Sprintf("cache.rules[%d] (%s)", i, r.Table)
		tables, err := r.Tables(ctx, q, nil)
		if err != nil {
			return nil, nil, err
		}
		if len(tables) == 0 {
			unmatched = append(unmatched, at)
		}
		for _, name := range tables {
			db, table, _ := strings.Cut(name, ".")
			meta, err := mysql.Columns(ctx, q, db, table)
			if err != nil {
				return nil, nil, err
			}
			cols := make([]string, len(meta))
			for i, c := range meta {
				cols[i] = c.Name
			}
			if len(cols) == 0 {
				continue // renamed or dropped since it was listed
			}
			uniques, err := uniqueKeysOf(ctx, q, name)
			if err != nil {
				return nil, nil, err
			}
			for _, tpl := range r.Keys {
				keyCols := config.KeyColumns(tpl)
				for _, c := range keyCols {
					if !slices.Contains(cols, c) {
						errs = append(errs, fmt.Errorf("%s: key template %s names column %q, which %s does not have (it has %s)", at, tpl, c, name, strings.Join(cols, ", ")))
					}
				}
				if !r.SharedKey && !unique(keyCols, uniques) {
					errs = append(errs, fmt.Errorf("%s: key template %s is not unique in %s: its columns (%s) hold neither the primary key nor a UNIQUE index (%s), so two rows may share the key and a change to one would evict or overwrite the other's; name a unique column in the key, or declare shared_key: true with action: evict",
						at, tpl, name, strings.Join(keyCols, ", "), describeUniques(uniques)))
				}
			}
			for _, c := range r.Columns {
				if !slices.Contains(cols, c) {
					errs = append(errs, fmt.Errorf("%s: columns lists %q, which %s does not have (it has %s)", at, c, name, strings.Join(cols, ", ")))
				}
			}
			// The cache cannot carry MariaDB's INET4, INET6 and UUID: it
			// would get their stored bytes where a rebuild, verify and an
			// application read text (the standby gets them exactly).
			written := r.keyColumns
			if r.Refresh() {
				written = cols
				if len(r.Columns) > 0 {
					written = slices.Concat(r.Columns, r.keyColumns)
				}
			}
			for _, c := range meta {
				if c.Stored != "" && slices.Contains(written, c.Name) {
					errs = append(errs, fmt.Errorf("%s: column %s of %s is of MariaDB's type %s, whose changes the binlog carries as its stored bytes while SELECT shows its text, so the cache could not hold what the standby shows; leave the column out of the rule's key templates and columns, or make it a CHAR or BINARY column",
						at, c.Name, name, strings.ToUpper(c.Stored)))
				}
			}
		}
	}
	return errors.Join(errs...), unmatched, nil
}

// uniqueKeysOf lists the columns of each unique index of a table ("db.table"):
// the primary key and every UNIQUE index; an index over an expression is
// left out (a key template cannot name its value).
func uniqueKeysOf(ctx context.Context, q Querier, name string) ([][]string, error) {
	db, table, _ := strings.Cut(name, ".")
	rows, err := q.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the unique indexes of %s: %w", name, err)
	}
	defer rows.Close()
	type index struct {
		name string
		cols []string
		expr bool // a part is an expression
	}
	var idx []index
	for rows.Next() {
		var name string
		var col sql.NullString
		if err := rows.Scan(&name, &col); err != nil {
			return nil, err
		}
		if len(idx) == 0 || idx[len(idx)-1].name != name {
			idx = append(idx, index{name: name})
		}
		last := &idx[len(idx)-1]
		last.cols, last.expr = append(last.cols, col.String), last.expr || !col.Valid
	}
	var out [][]string
	for _, i := range idx {
		if !i.expr {
			out = append(out, i.cols)
		}
	}
	return out, rows.Err()
}

// unique reports whether a key over cols names at most one row: some unique
// index has all its columns among them. (A row with a NULL in cols has no
// key, so a unique index's NULLs do not matter.)
func unique(cols []string, uniques [][]string) bool {
	return slices.ContainsFunc(uniques, func(index []string) bool {
		return !slices.ContainsFunc(index, func(c string) bool { return !slices.Contains(cols, c) })
	})
}

func describeUniques(uniques [][]string) string {
	if len(uniques) == 0 {
		return "it has no unique index"
	}
	parts := make([]string, len(uniques))
	for i, u := range uniques {
		parts[i] = "(" + strings.Join(u, ", ") + ")"
	}
	return "its unique indexes: " + strings.Join(parts, ", ")
}
