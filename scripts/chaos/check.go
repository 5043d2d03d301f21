package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

// final is what the run finds once the pipeline has drained.
type final struct {
	tables     []verify.Table
	cache      *verify.Cache
	txns, rows int      // transactions and records in the primary log
	problems   []string // exactly-once violations
	drained    time.Duration
}

// check waits until standby == primary and cache == standby (or the
// timeout), then counts every transaction on both topics by GTID.
func (s *stack) check(ctx context.Context, timeout time.Duration) (*final, error) {
	f := &final{}
	start := time.Now()
	rules := cacherule.Compile(s.cfg.Cache)
	for {
		var err error
		if f.tables, err = verify.Databases(ctx, s.primary, s.standby, []string{"chaos"}); err == nil {
			f.cache, err = verify.CacheAgainst(ctx, s.standby, s.rdb, rules, []string{"chaos"})
		}
		if err == nil && verify.AllEqual(f.tables) && f.cache.OK() {
			break
		}
		if time.Since(start) > timeout {
			if err != nil {
				return nil, err
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.drained = time.Since(start)
	return f, s.countOnce(ctx, f)
}

// countOnce checks that every row of every transaction is once in the
// primary log, and every primary-log record once in the standby log.
func (s *stack) countOnce(ctx context.Context, f *final) error {
	opts, err := kafka.Options(s.cfg.Kafka)
	if err != nil {
		return err
	}
	read := func(topic string, fn func(*kgo.Record, *schemas.Record)) error {
		return kafka.ScanTopic(ctx, opts, topic, func(kr *kgo.Record, r *schemas.Record) error {
			fn(kr, r)
			return nil
		})
	}
	rowsOf := make(map[string]int) // GTID -> rows in the primary log
	seen := make(map[string]bool)  // GTID#index in the primary log
	offsets := make(map[int64]int) // primary offset -> times in the standby log
	standbyRows := make(map[string]int)
	err = read(s.cfg.Kafka.PrimaryTopic, func(kr *kgo.Record, r *schemas.Record) {
		id := fmt.Sprintf("%s#%d", r.Txn.GTID, r.Txn.Index)
		if seen[id] {
			f.problems = append(f.problems, "twice in the primary log: row "+id)
		}
		seen[id] = true
		rowsOf[r.Txn.GTID]++
		offsets[kr.Offset] = 0
		f.rows++
	})
	if err != nil {
		return err
	}
	f.txns = len(rowsOf)
	err = read(s.cfg.Kafka.StandbyTopic, func(_ *kgo.Record, r *schemas.Record) {
		offsets[r.Standby.PrimaryOffset]++
		standbyRows[r.Txn.GTID]++
	})
	if err != nil {
		return err
	}
	for off, n := range offsets {
		if n != 1 {
			f.problems = append(f.problems, fmt.Sprintf("primary offset %d is %d times in the standby log", off, n))
		}
	}
	for g, n := range rowsOf {
		if standbyRows[g] != n {
			f.problems = append(f.problems, fmt.Sprintf("transaction %s: %d rows in the primary log, %d in the standby log", g, n, standbyRows[g]))
		}
	}
	sort.Strings(f.problems)
	return nil
}

// report prints the summary and returns whether the run is clean.
func report(o options, results []faultResult, w *workload, obs *observer, f *final) bool {
	fmt.Printf("\nchaos run: seed %d, %d fault cycles\n", o.seed, len(results))
	fmt.Printf("  %-24s %6s %12s %12s %s\n", "fault", "count", "recovery p50", "recovery max", "errors")
	byKind := make(map[string][]faultResult)
	for _, r := range results {
		byKind[r.kind] = append(byKind[r.kind], r)
	}
	faultErrs := 0
	for _, k := range kinds {
		rs := byKind[k]
		if len(rs) == 0 {
			continue
		}
		var ds []time.Duration
		var errs []string
		for _, r := range rs {
			ds = append(ds, r.recovery)
			if r.err != nil {
				errs = append(errs, r.err.Error())
			}
		}
		faultErrs += len(errs)
		slices.Sort(ds)
		fmt.Printf("  %-24s %6d %12s %12s %s\n", k, len(rs), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), strings.Join(errs, "; "))
	}
	fmt.Printf("  workload: %d transactions committed, %d refused or broken by faults\n", w.committed.Load(), w.failed.Load())
	fmt.Printf("  primary log: %d transactions, %d records; drained %.1fs after the last fault\n", f.txns, f.rows, f.drained.Seconds())
	obs.mu.Lock()
	fmt.Printf("  observer: %d cache reads checked, %d violations\n", obs.reads, len(obs.viol))
	for _, v := range obs.viol[:min(len(obs.viol), 20)] {
		fmt.Println("    " + v)
	}
	violations := len(obs.viol)
	obs.mu.Unlock()
	for _, t := range f.tables {
		v := "equal"
		if !t.OK() {
			v = "DIFFERENT"
			violations++
		}
		fmt.Printf("  %-12s primary %6d rows sum %10d, standby %6d rows sum %10d: %s\n", t.Name, t.PrimaryRows, t.PrimarySum.Int64, t.StandbyRows, t.StandbySum.Int64, v)
		for _, d := range t.Diff {
			fmt.Println("    " + d)
		}
	}
	fmt.Printf("  cache: %d keys checked, %d missing, %d stale, %d extra\n", f.cache.Checked, len(f.cache.Missing), len(f.cache.Wrong), len(f.cache.Orphans))
	for _, l := range [][]string{f.cache.Missing, f.cache.Wrong, f.cache.Orphans} {
		if len(l) > 0 {
			fmt.Println("    " + strings.Join(l[:min(len(l), 10)], " "))
		}
	}
	if !f.cache.OK() {
		violations++
	}
	fmt.Printf("  exactly once: %d problems\n", len(f.problems))
	for _, p := range f.problems[:min(len(f.problems), 20)] {
		fmt.Println("    " + p)
	}
	violations += len(f.problems) + faultErrs
	fmt.Printf("VIOLATIONS: %d\n", violations)
	return violations == 0
}
