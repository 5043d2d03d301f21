package cacheapply

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// replayCommand writes the cache again from the topic the cache-applier
// consumes, from an offset or a time up to its current end. Every write is
// version-guarded, so it cannot undo a newer change: it is safe while the
// cache-applier runs. The group's offsets are not touched and hooks are not
// called.
func replayCommand() *cobra.Command {
	var from *service.From
	cmd := service.Task("replay", "Write the cache again from the standby log, from --from-offset or --from-time to its end (safe while the cache-applier runs)",
		func(ctx context.Context, cfg *config.Config, out, _ io.Writer) error {
			if err := from.Parse(); err != nil {
				return err
			}
			return replay(ctx, cfg, from.Offset, from.Time, out)
		})
	from = service.FromFlags(cmd, "start at this offset of every partition", "start at the first record written at or after this time")
	return cmd
}

func replay(ctx context.Context, cfg *config.Config, fromOffset int64, since time.Time, out io.Writer) error {
	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	topic := cfg.CacheTopic()
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return err
	}
	var byTime kadm.ListedOffsets
	if !since.IsZero() {
		if byTime, err = kafka.OffsetsAt(ctx, adm, topic, since); err != nil {
			return err
		}
	}
	log := service.Logger(cfg.Log, "cache-applier")
	rdb, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	a := newCacheApplier(cfg, rdb, log, &hooks{})
	defer a.rebuild.close()
	for p, b := range bounds {
		from := max(fromOffset, b.Start)
		if o, ok := byTime.Lookup(topic, p); ok {
			from = max(o.Offset, b.Start)
		}
		if err := a.replay(ctx, opts, topic, p, from, b.End); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s[%d]: replayed offsets %d..%d\n", topic, p, from, b.End-1)
	}
	_, err = fmt.Fprintf(out, "cache ops: %d applied, %d older than what Redis held (skipped)\n", a.applied, a.skipped)
	return err
}

// replay writes the cache again from offsets from..end-1 of one partition
// of the topic, through apply's version-guarded writes.
func (a *cacheApplier) replay(ctx context.Context, opts []kgo.Opt, topic string, p int32, from, end int64) error {
	var batch []*kgo.Record
	flush := func() error {
		err := a.apply(ctx, batch)
		batch = batch[:0]
		return err
	}
	err := kafka.Scan(ctx, opts, topic, p, from, end, func(r *kgo.Record) error {
		if batch = append(batch, r); len(batch) == pollRecords {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("replay %s[%d] from offset %d: %w", topic, p, from, err)
	}
	return nil
}
