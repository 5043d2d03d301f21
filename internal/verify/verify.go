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
	Name                           string
	PrimaryRows, StandbyRows       int64
	PrimarySum, StandbySum         sql.NullInt64
	MissingPrimary, MissingStandby bool
}

// OK reports whether both sides hold the same rows.
func (t Table) OK() bool {
	return !t.MissingPrimary && !t.MissingStandby && t.PrimaryRows == t.StandbyRows && t.PrimarySum == t.StandbySum
}

// Databases compares every base table of the given databases on both sides.
func Databases(ctx context.Context, primary, standby *sql.DB, dbs []string) ([]Table, error) {
	pt, err := tables(ctx, primary, dbs)
	if err != nil {
		return nil, fmt.Errorf("list primary tables: %w", err)
	}
	st, err := tables(ctx, standby, dbs)
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
		out = append(out, t)
	}
	return out, nil
}

func tables(ctx context.Context, db *sql.DB, dbs []string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return nil, err
		}
		if slices.Contains(dbs, s) {
			out = append(out, s+"."+t)
		}
	}
	return out, rows.Err()
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
		for _, tpl := range r.Rule.Keys {
			iter := rdb.Scan(ctx, 0, r.Pattern(tpl), 1000).Iterator()
			for iter.Next(ctx) {
				if k := iter.Val(); !expected[k] && !slices.Contains(res.Orphans, k) {
					res.Orphans = append(res.Orphans, k)
				}
			}
			if err := iter.Err(); err != nil {
				return nil, fmt.Errorf("scan Redis: %w", err)
			}
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
			ok, found, err := sameValue(ctx, rdb, r, k, row)
			if err != nil {
				return err
			}
			res.Checked++
			switch {
			case !found:
				res.Missing = append(res.Missing, k)
			case !ok:
				res.Wrong = append(res.Wrong, k)
			}
		}
		return nil
	})
}

func sameValue(ctx context.Context, rdb *redis.Client, r *cacherule.Rule, key string, row cacherule.Row) (ok, found bool, err error) {
	if r.Format == "json" {
		got, err := rdb.Get(ctx, key).Result()
		if err == redis.Nil {
			return false, false, nil
		}
		if err != nil {
			return false, false, err
		}
		return got == r.JSON(row), true, nil
	}
	got, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return false, false, err
	}
	if len(got) == 0 {
		return false, false, nil
	}
	want := r.Hash(row)
	if len(want) != 2*len(got) {
		return false, true, nil
	}
	for i := 0; i < len(want); i += 2 {
		if v, ok := got[want[i].(string)]; !ok || v != string(want[i+1].([]byte)) {
			return false, true, nil
		}
	}
	return true, true, nil
}
