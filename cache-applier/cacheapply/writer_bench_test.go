package cacheapply

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
		for n := 0; b.Loop(); n++ {
			for i := range ops {
				ops[i].version = schemas.FormatVersion(0, int64(n))
			}
			if _, err := w.write(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("hset", func(b *testing.B) {
		for b.Loop() {
			pipe := e.Redis.Pipeline()
			for _, o := range ops {
				pipe.HSet(ctx, o.key, o.payload...)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
}
