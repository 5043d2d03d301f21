package verify

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/progress"
)

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
// progress (nil: none) gets a progress bar or lines, in standby rows.
func CacheAgainst(ctx context.Context, standby *sql.DB, rdb redis.UniversalClient, rules *cacherule.Set, dbs []string, progressOut io.Writer) (*Cache, error) {
	res := &Cache{}
	expected := make(map[string]bool)
	tables := make(map[*cacherule.Rule][]string)
	var all []string
	for _, r := range rules.Rules() {
		if !r.Refresh() {
			continue
		}
		names, err := r.Tables(ctx, standby, dbs)
		if err != nil {
			return nil, err
		}
		tables[r], all = names, append(all, names...)
	}
	meter, err := newMeter(ctx, standby, progressOut, "verify cache", all)
	if err != nil {
		return nil, err
	}
	for _, r := range rules.Rules() {
		for _, name := range tables[r] {
			if err := checkTable(ctx, standby, rdb, r, name, res, expected, meter); err != nil {
				return nil, err
			}
		}
	}
	meter.Done()
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

func checkTable(ctx context.Context, standby *sql.DB, rdb redis.UniversalClient, r *cacherule.Rule, name string, res *Cache, expected map[string]bool, meter *progress.Meter) error {
	return cacherule.ScanTable(ctx, standby, quoted(name), nil, func(row cacherule.Row) error {
		meter.Add(1)
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
func compareKey(ctx context.Context, rdb redis.UniversalClient, r *cacherule.Rule, key string, row cacherule.Row) (diff string, found bool, err error) {
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
	want := r.Hash(row)
	if len(got) == 0 {
		// Redis holds no empty hash: a row whose cached columns are all
		// NULL has no key, as it should
		return "", len(want) == 0, nil
	}
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
