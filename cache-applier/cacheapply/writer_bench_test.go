package cacheapply

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Guarded writes against plain pipelined HSET of the same rows (sysbench's
// shape: id, k, c of 119 characters, pad of 59), in batches of 500, on the
// test Redis. scripts/bench.sh measures the whole cache-applier; this
// measures its Redis writes alone:
//
//	go test -run X -bench Write ./cache-applier/cacheapply
func BenchmarkWrite(b *testing.B) {
	e := testenv.New(b)
	ctx := context.Background()
	const rows = 500
	ops := make([]op, rows)
	for i := range ops {
		ops[i] = op{key: fmt.Sprintf("%sbench:%d", e.Cfg.Cache.KeyPrefix, i), mode: modeHash,
			payload: []any{"id", fmt.Sprint(i), "k", fmt.Sprint(i * 7), "c", strings.Repeat("c", 119), "pad", strings.Repeat("p", 59)}}
	}
	b.Run("guarded", func(b *testing.B) {
		w := &writer{rdb: e.Redis, tombstoneTTL: time.Hour}
		resetCommandStats(b, e.Redis)
		for n := 0; b.Loop(); n++ {
			for i := range ops {
				ops[i].version = schemas.FormatVersion(0, int64(n))
			}
			if _, err := w.write(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
		reportCommandTime(b, e.Redis, "evalsha", b.N*rows)
		reportCommandTime(b, e.Redis, "hset", b.N*rows)
	})
	b.Run("hset", func(b *testing.B) { plainHSET(b, e.Redis, ops) })
}

// plainHSET is the baseline of the guarded writes: the hash ops' payloads
// as plain HSET, pipelined batchOps at a time, with no version guard.
func plainHSET(b *testing.B, rdb redis.UniversalClient, ops []op) {
	ctx := context.Background()
	resetCommandStats(b, rdb)
	for b.Loop() {
		for batch := range slices.Chunk(ops, batchOps) {
			pipe := rdb.Pipeline()
			for _, o := range batch {
				pipe.HSet(ctx, o.key, o.payload...)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(ops))/b.Elapsed().Seconds(), "rows/s")
	reportCommandTime(b, rdb, "hset", b.N*len(ops))
}

// resetCommandStats zeroes Redis's per-command time (INFO commandstats),
// which reportCommandTime reads: the time Redis spends running a command,
// less noisy on a shared machine than rates. Benchmarks run one at a time,
// so no other user of the test Redis counts in it.
func resetCommandStats(b *testing.B, rdb redis.UniversalClient) {
	if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

// reportCommandTime reports the µs Redis spent in cmd per row of rows (for
// evalsha, the whole script; for hset, also the calls a script made).
func reportCommandTime(b *testing.B, rdb redis.UniversalClient, cmd string, rows int) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if us, ok := strings.CutPrefix(field, "usec="); ok {
				n, err := strconv.ParseFloat(us, 64)
				if err != nil {
					b.Fatalf("commandstats %s: %v", line, err)
				}
				b.ReportMetric(n/float64(rows), "redis-"+cmd+"-µs/row")
				return
			}
		}
	}
	b.Fatalf("no %s in Redis's commandstats", cmd)
}

// The cache-applier's whole path for a poll of records, decoding, planning
// and the guarded writes, against plain pipelined HSET of the rows' after
// images in batches of 500, on the test Redis: the in-process counterpart
// of scripts/bench.sh's cache_vs_hset (no Kafka fetch, no offset commit).
// 2,000 sysbench updates a poll, of keys that are all new to Redis's
// version guard each poll:
//
//	go test -run X -bench Apply ./cache-applier/cacheapply
func BenchmarkApply(b *testing.B) {
	e := testenv.New(b)
	ctx := context.Background()
	cfg := *e.Cfg
	cfg.Primary.Databases = nil // every database, sbtest too
	cfg.Cache.Rules = []config.Rule{sysbenchRule}
	const rows = 2000
	// poll encodes the records of one poll, at a primary-log epoch of its
	// own: versions newer than the last poll's.
	poll := func(epoch int64) []*kgo.Record {
		recs := make([]*kgo.Record, rows)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "bench", Offset: int64(i), Value: sysbenchUpdate(b, i, int64(i), epoch)}
		}
		return recs
	}
	b.Run("applier", func(b *testing.B) {
		// Versions start over at epoch 1: no key may remember a later one.
		pipe := e.Redis.Pipeline()
		for i := range rows {
			key := cfg.Cache.KeyPrefix + "sb1:" + strconv.Itoa(i)
			pipe.Del(ctx, key, cache.VersionKey(key))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		a := newCacheApplier(&cfg, e.Redis, slog.New(slog.DiscardHandler), &hooks{})
		resetCommandStats(b, e.Redis)
		for n := range b.N {
			b.StopTimer()
			recs := poll(int64(n + 1))
			b.StartTimer()
			if err := a.apply(ctx, recs); err != nil {
				b.Fatal(err)
			}
		}
		if a.applied != b.N*rows {
			b.Fatalf("%d of %d writes applied", a.applied, b.N*rows)
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
		reportCommandTime(b, e.Redis, "evalsha", b.N*rows)
	})
	b.Run("hset", func(b *testing.B) {
		// The keys and hashes the applier writes, planned as it plans them.
		rule := cacherule.Compile(cfg.Cache, nil).Rules()[0]
		var ops []op
		for _, kr := range poll(1) {
			r, err := schemas.Decode(kr.Value)
			if err != nil {
				b.Fatal(err)
			}
			planned, err := plan(rule, r, "")
			if err != nil {
				b.Fatal(err)
			}
			ops = append(ops, planned...)
		}
		plainHSET(b, e.Redis, ops)
	})
}
