// Package verify compares the standby with the primary (per table, CHECKSUM
// TABLE and row count) and the cache with the standby (every key the rules
// say a standby row should have, and no key that no row explains).
package verify

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// Table is the comparison of one table.
type Table struct {
	// Diff lists, for a table whose checksums differ, the primary keys of
	// the rows that differ (at most maxDiff), each with what is wrong.
	Diff                           []string
	Name                           string
	PrimaryRows, StandbyRows       int64
	PrimarySum, StandbySum         sql.NullInt64
	MissingPrimary, MissingStandby bool
}

// OK reports whether both sides hold the same rows.
func (t Table) OK() bool {
	return !t.MissingPrimary && !t.MissingStandby && t.PrimaryRows == t.StandbyRows && t.PrimarySum == t.StandbySum
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

// Databases compares every base table of the given databases on both sides.
func Databases(ctx context.Context, primary, standby *sql.DB, dbs []string) ([]Table, error) {
	pt, err := cacherule.BaseTables(ctx, primary, dbs)
	if err != nil {
		return nil, fmt.Errorf("list primary tables: %w", err)
	}
	st, err := cacherule.BaseTables(ctx, standby, dbs)
	if err != nil {
		return nil, fmt.Errorf("list standby tables: %w", err)
	}
	names := append(slices.Clone(pt), st...)
	slices.Sort(names)
	names = slices.Compact(names)
	var out []Table
	for _, n := range names {
		t := Table{Name: n, MissingPrimary: !slices.Contains(pt, n), MissingStandby: !slices.Contains(st, n)}
		if !t.MissingPrimary {
			if t.PrimaryRows, t.PrimarySum, err = summary(ctx, primary, n); err != nil {
				return nil, fmt.Errorf("primary: %w", err)
			}
		}
		if !t.MissingStandby {
			if t.StandbyRows, t.StandbySum, err = summary(ctx, standby, n); err != nil {
				return nil, fmt.Errorf("standby: %w", err)
			}
		}
		if !t.OK() && !t.MissingPrimary && !t.MissingStandby {
			if t.Diff, err = diffRows(ctx, primary, standby, n); err != nil {
				return nil, err
			}
		}
		out = append(out, t)
	}
	return out, nil
}

const maxDiff = 20

// diffRows compares a table row by row, keyed by its primary key (or the
// whole row for a table without one), and names the rows that differ.
func diffRows(ctx context.Context, primary, standby *sql.DB, name string) ([]string, error) {
	p, err := rowDigests(ctx, primary, name)
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	s, err := rowDigests(ctx, standby, name)
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
	return diff[:min(len(diff), maxDiff)], nil
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

// rowDigests maps each row's key to its columns, as "name=value".
func rowDigests(ctx context.Context, db *sql.DB, name string) (map[string][]string, error) {
	dbName, table, _ := strings.Cut(name, ".")
	var keyCols []string
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, dbName, table)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		keyCols = append(keyCols, c)
	}
	rows.Close()
	out := make(map[string][]string)
	err = cacherule.ScanTable(ctx, db, quoted(name), func(r cacherule.Row) error {
		var key, all []string
		for i, n := range r.Names {
			v := "NULL"
			if r.Values[i] != nil {
				v = fmt.Sprintf("%q", r.Values[i])
			}
			all = append(all, n+"="+v)
			if slices.Contains(keyCols, n) {
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

func summary(ctx context.Context, db *sql.DB, name string) (int64, sql.NullInt64, error) {
	var n int64
	var sum sql.NullInt64
	var tbl string
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quoted(name)).Scan(&n); err != nil {
		return 0, sum, fmt.Errorf("count %s: %w", name, err)
	}
	if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+quoted(name)).Scan(&tbl, &sum); err != nil {
		return 0, sum, fmt.Errorf("checksum %s: %w", name, err)
	}
	return n, sum, nil
}

// Cache is the comparison of the cache with the standby.
type Cache struct {
	Keys    int      // keys the standby rows call for
	Missing []string // expected keys absent from Redis
	Wrong   []string // keys whose value differs from the standby row
	Orphans []string // keys no standby row explains
	Checked int      // keys compared
}

// OK reports whether the cache equals the standby, key for key.
func (c *Cache) OK() bool { return len(c.Missing)+len(c.Wrong)+len(c.Orphans) == 0 }

// CacheAgainst compares every refresh rule's keys with the standby rows of
// the databases given.
func CacheAgainst(ctx context.Context, standby *sql.DB, rdb *redis.Client, rules *cacherule.Set, dbs []string) (*Cache, error) {
	res := &Cache{}
	expected := make(map[string]bool)
	for _, r := range rules.Rules() {
		if !r.Refresh() {
			continue
		}
		names, err := r.Tables(ctx, standby, dbs)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if err := checkTable(ctx, standby, rdb, r, name, res, expected); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range rules.Rules() {
		if !r.Refresh() {
			continue
		}
		err := r.EachKey(ctx, rdb, func(k string) error {
			if !expected[k] && !slices.Contains(res.Orphans, k) {
				res.Orphans = append(res.Orphans, k)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

func checkTable(ctx context.Context, standby *sql.DB, rdb *redis.Client, r *cacherule.Rule, name string, res *Cache, expected map[string]bool) error {
	return cacherule.ScanTable(ctx, standby, quoted(name), func(row cacherule.Row) error {
		keys, err := r.Render(row)
		if err != nil {
			return err
		}
		for _, k := range keys {
			expected[k] = true
			res.Keys++
			diff, found, err := compareKey(ctx, rdb, r, k, row)
			if err != nil {
				return err
			}
			res.Checked++
			switch {
			case !found:
				res.Missing = append(res.Missing, k)
			case diff != "":
				res.Wrong = append(res.Wrong, k+" ("+diff+")")
			}
		}
		return nil
	})
}

// compareKey compares a key's value with the standby row it should hold:
// diff names what differs ("" when equal).
func compareKey(ctx context.Context, rdb *redis.Client, r *cacherule.Rule, key string, row cacherule.Row) (diff string, found bool, err error) {
	if r.Format == "json" {
		got, err := rdb.Get(ctx, key).Result()
		if err == redis.Nil {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		if want := r.JSON(row); got != want {
			return fmt.Sprintf("cache %.200q, standby %.200q", got, want), true, nil
		}
		return "", true, nil
	}
	got, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return "", false, err
	}
	if len(got) == 0 {
		return "", false, nil
	}
	want := r.Hash(row)
	var diffs []string
	for i := 0; i < len(want); i += 2 {
		f, w := want[i].(string), string(want[i+1].([]byte))
		if v, ok := got[f]; !ok || v != w {
			diffs = append(diffs, fmt.Sprintf("field %s: cache %.100q, standby %.100q", f, v, w))
		}
		delete(got, f)
	}
	for f := range got {
		diffs = append(diffs, "field "+f+" only in the cache")
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; "), true, nil
}
