package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

// final is what the run finds once the pipeline has drained.
type final struct {
	tables     []verify.Table
	cache      *verify.Cache
	txns, rows int      // transactions and distinct rows in the primary log
	problems   []string // delivery violations
	drained    time.Duration
	// repeats: rows a reader saw more than once; skipped: transactions the
	// applier found already applied; applied and binlog: the GTID positions
	// of the standby and the primary at the end.
	repeats, skipped int
	applied, binlog  string
}

// check waits until standby == primary and cache == standby (or the
// timeout), then counts every transaction on both topics by GTID.
func (s *stack) check(ctx context.Context, timeout time.Duration) (*final, error) {
	f := &final{}
	start := time.Now()
	rules := cacherule.Compile(s.cfg.Cache, s.cfg.Primary.Databases)
	for {
		var err error
		if f.tables, err = verify.Databases(ctx, s.primary, s.standby, []string{"chaos"}, 0, nil); err == nil {
			f.cache, err = verify.CacheAgainst(ctx, s.standby, s.rdb, rules, []string{"chaos"}, nil)
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

// countOnce checks delivery on both topics, row by row: every row of every
// primary transaction reaches the standby log, and nothing else does. A
// reader may see one row more than once: an aborted Kafka transaction's
// rows, which the embedded broker (kfake) sometimes delivers to
// read-committed readers on long reads, or a transaction published again.
// Those are counted, not failed: what must hold is that the standby applied
// each transaction once, which the applied GTID set shows (the applier
// skips any transaction it covers) together with the table comparison.
func (s *stack) countOnce(ctx context.Context, f *final) error {
	opts, err := kafka.Options(s.cfg.Kafka)
	if err != nil {
		return err
	}
	primary := make(map[string]int) // GTID#index -> deliveries
	gtids := make(map[string]bool)
	err = kafka.ScanTopic(ctx, opts, s.cfg.Kafka.PrimaryTopic, func(_ *kgo.Record, r *schemas.Record) error {
		primary[fmt.Sprintf("%s#%d", r.Txn.GTID, r.Txn.Index)]++
		gtids[r.Txn.GTID] = true
		return nil
	})
	if err != nil {
		return err
	}
	standby := make(map[string]int)
	err = kafka.ScanTopic(ctx, opts, s.cfg.Kafka.StandbyTopic, func(_ *kgo.Record, r *schemas.Record) error {
		standby[fmt.Sprintf("%s#%d", r.Txn.GTID, r.Txn.Index)]++
		return nil
	})
	if err != nil {
		return err
	}
	f.txns, f.rows = len(gtids), len(primary)
	for row, n := range primary {
		f.repeats += n - 1
		if standby[row] == 0 {
			f.problems = append(f.problems, "row "+row+" of the primary log is not in the standby log")
		}
	}
	for row, n := range standby {
		f.repeats += n - 1
		if primary[row] == 0 {
			f.problems = append(f.problems, "row "+row+" of the standby log is not in the primary log")
		}
	}
	var applied string
	if err := s.standby.QueryRowContext(ctx, "SELECT gtid FROM lockstep.checkpoint WHERE name = ?", s.cfg.Applier.Name).Scan(&applied); err != nil {
		return err
	}
	binlog, behind, err := mysql.Unapplied(ctx, s.primary, applied)
	if err != nil {
		return err
	}
	f.applied, f.binlog = applied, binlog
	if behind != 0 {
		f.problems = append(f.problems, fmt.Sprintf("the standby applied through %s, the primary is at %s: %d transactions behind", applied, binlog, behind))
	}
	f.skipped = countInLogs(s.o.dev, "transaction already applied", "storage-applier/storage-applier.log", "storage-applier-spare/storage-applier.log")
	// The cache-applier's consistency sampler (cache.sample_rate) logs
	// each cached version it finds ahead of the standby.
	const cacheLog = "cache-applier/cache-applier.log"
	if countInLogs(s.o.dev, "sampling the cache's consistency", cacheLog) == 0 {
		f.problems = append(f.problems, "the cache-applier's consistency sampler did not run (cache.sample_rate in scripts/chaos.yaml)")
	}
	if n := countInLogs(s.o.dev, "a cached version is ahead of the standby", cacheLog); n > 0 {
		f.problems = append(f.problems, fmt.Sprintf("the cache-applier's sampler found %d cached versions ahead of the standby (see its log)", n))
	}
	sort.Strings(f.problems)
	return nil
}

// countInLogs counts the lines with text in services' logs (paths under dev).
func countInLogs(dev, text string, logs ...string) int {
	n := 0
	for _, l := range logs {
		b, _ := os.ReadFile(filepath.Join(dev, l))
		n += strings.Count(string(b), text)
	}
	return n
}

// workDone is what the workload did during the fault cycles.
type workDone struct{ committed, failed int64 }

// report prints the summary and returns whether the run is clean.
func report(o options, results []faultResult, w workDone, obs *observer, f *final) bool {
	fmt.Printf("\nchaos run: seed %d, %d fault cycles\n", o.seed, len(results))
	fmt.Printf("  %-24s %6s %12s %12s %s\n", "fault", "count", "recovery p50", "recovery max", "errors")
	byKind := make(map[string][]faultResult)
	for _, r := range results {
		byKind[r.kind] = append(byKind[r.kind], r)
	}
	faultErrs := 0
	for _, k := range append(kinds[:len(kinds):len(kinds)], lastKind) {
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
	fmt.Printf("  workload during the fault cycles: %d transactions committed, %d refused or broken by faults\n", w.committed, w.failed)
	fmt.Printf("  primary log: %d transactions, %d records; drained %.1fs after the last fault\n", f.txns, f.rows, f.drained.Seconds())
	obs.mu.Lock()
	fmt.Printf("  observer: %d cache reads checked, %d violations\n", obs.reads, len(obs.viol))
	for _, v := range obs.viol[:min(len(obs.viol), 20)] {
		fmt.Println("    " + v)
	}
	violations := len(obs.viol)
	obs.mu.Unlock()
	for _, t := range f.tables {
		if !t.OK() {
			violations++
		}
	}
	fmt.Print(verify.StorageReport(f.tables))
	fmt.Printf("  cache: %d keys checked, %d missing, %d stale, %d extra\n", f.cache.Checked, len(f.cache.Missing), len(f.cache.Wrong), len(f.cache.Orphans))
	for _, l := range [][]string{f.cache.Missing, f.cache.Wrong, f.cache.Orphans} {
		if len(l) > 0 {
			fmt.Println("    " + strings.Join(l[:min(len(l), 10)], " "))
		}
	}
	if !f.cache.OK() {
		violations++
	}
	fmt.Printf("  delivery: standby applied through GTID %s, primary at %s; rows read more than once %d, duplicate transactions skipped by the applier %d; %d problems\n",
		f.applied, f.binlog, f.repeats, f.skipped, len(f.problems))
	for _, p := range f.problems[:min(len(f.problems), 20)] {
		fmt.Println("    " + p)
	}
	violations += len(f.problems) + faultErrs
	fmt.Printf("VIOLATIONS: %d\n", violations)
	return violations == 0
}
