// Command storage-applier consumes the primary log, applies each primary
// transaction to the standby database atomically and in primary commit
// order together with its checkpoint, and only after the standby COMMIT
// republishes the transaction's rows to the standby log.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/sqltext"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

func main() {
	// The careful range outlives each run: a failed run's successor
	// applies up to the failure one statement at a time.
	carefully := &careful{through: -1}
	cmd := service.Command("storage-applier", "Apply the primary log to the standby database, then republish to the standby log",
		func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			return run(ctx, cfg, log, carefully)
		},
		status.RPOWatcher(status.RPOApplied))
	cmd.AddCommand(rewindCommand(), failoverCommand(), reverseCommand(), status.Command(), status.HealthCommand("storage-applier"), verify.Command())
	service.Main(cmd)
}

// run is one life of the applier. Its start is the recovery: what the
// standby committed but the standby log lacks is republished first, from
// the primary log (our outbox), then applying resumes after the checkpoint.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger, carefully *careful) error {
	db, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return err
	}
	defer db.Close()
	if ro, err := mysql.ReadOnly(ctx, db); err != nil {
		return mysql.Classify(fmt.Errorf("standby: %w", err))
	} else if !ro {
		log.Warn(mysql.WritableStandby)
	}
	primaryTopic, standbyTopic := cfg.Kafka.PrimaryTopic, cfg.Kafka.StandbyTopic
	lk, err := acquire(ctx, db, cfg.Applier.Name, log)
	if err != nil || lk == nil {
		return err
	}
	defer lk.release()
	cp, err := loadCheckpoint(ctx, db, cfg.Applier.Name, primaryTopic)
	if err != nil {
		return err
	}

	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	ptopic, err := kafka.EnsureTopic(ctx, adm, primaryTopic, 1, cfg.Kafka.MaxMessageBytes)
	if err != nil {
		return err
	}
	if err := cp.checkTopic(ctx, db, primaryTopic, ptopic.ID); err != nil {
		return err
	}
	if _, err := kafka.EnsureTopic(ctx, adm, standbyTopic, int32(cfg.Kafka.StandbyPartitions), cfg.Kafka.MaxMessageBytes); err != nil {
		return err
	}
	pb, err := kafka.PartitionBounds(ctx, adm, primaryTopic)
	if err != nil {
		return err
	}
	primary := pb[0]
	if cp.offset >= primary.End {
		return service.Permanentf("topic %s partition 0 went back: the standby checkpoint %q is at offset %d but the topic ends at %d; the topic was deleted, re-created or truncated. Nothing was applied; re-bootstrap the standby or restore the topic",
			primaryTopic, cp.name, cp.offset, primary.End)
	}
	sb, err := kafka.PartitionBounds(ctx, adm, standbyTopic)
	if err != nil {
		return err
	}
	published, publishedGTID, err := status.LastPublished(ctx, opts, standbyTopic, sb)
	if err != nil {
		return err
	}
	switch {
	case published > cp.offset && published <= cp.rewindEnd:
		log.Warn("the standby was rewound: applying again what the standby log already holds, and republishing it (the cache's versions make the repeats harmless); until the applier passes the offset where the standby log ended, the cache may hold values newer than the standby",
			"from_offset", cp.offset+1, "standby_log_through", published)
	case published > cp.offset:
		return service.Permanentf("standby log %s holds primary offset %d but the standby checkpoint %q is at %d: the standby database is behind what was published (restored from an old backup?). If it holds exactly what the primary log holds before offset %d, say so with storage-applier rewind --from-offset %d; otherwise re-bootstrap it",
			standbyTopic, published, cp.name, cp.offset, cp.offset+1, cp.offset+1)
	}
	if from := min(published, cp.offset) + 1; from < primary.Start {
		return service.Permanentf("topic %s starts at offset %d but the standby needs offset %d: retention removed records not yet applied or republished; re-bootstrap the standby",
			primaryTopic, primary.Start, from)
	}

	w, err := kafka.NewTxnWriter(opts, "lockstep-"+cfg.Applier.Name, cfg.Kafka, log)
	if err != nil {
		return err
	}
	defer w.Client.Close()
	items := kafka.Queue(cfg.Applier.BatchRows)
	rp := &republisher{topic: standbyTopic, out: items, source: primaryTopic, opts: opts, changes: &standbyChanges{db: db, name: cfg.Applier.Name}, epoch: cp.epoch}
	rp.published.Store(published)
	if err := rp.changes.prune(ctx, min(published, cp.offset), cp.offset); err != nil {
		return err
	}
	w.BatchRows, w.Linger, w.Stage = cfg.Applier.BatchRows, cfg.Applier.Linger, "republished"
	w.Committed = func(mark int64) { rp.published.Store(mark) }
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to the standby: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET "+sqltext.ApplyingVar+" = 1"); err != nil {
		return mysql.Classify(fmt.Errorf("set up the applier's standby session: %w", err))
	}
	a := newApplier(db, sqlConn{conn}, carefully, cp, log, primaryTopic, newStandbyTables(db, cfg.Primary.Databases), rp, cfg.Applier.GroupRows)
	defer a.tx.rollback()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return lk.watch(ctx) })
	g.Go(func() error { return w.Run(ctx, items) })
	g.Go(func() error {
		if published < cp.offset {
			log.Info("republishing transactions the standby committed but the standby log lacks", "from_offset", published+1, "to_offset", cp.offset)
			if err := republish(ctx, rp, publishedGTID, published+1, cp.offset+1, log); err != nil {
				return err
			}
		}
		log.Info("applying", "topic", primaryTopic, "from_offset", cp.offset+1, "standby", cfg.Standby.Address)
		return read(ctx, opts, primaryTopic, cp.offset+1, -1, log, func(r *schemas.Record, rec *kgo.Record, restart bool) error {
			return a.add(ctx, r, rec, restart)
		}, a.idle, a.failed) // the whole transactions before a broken one are applied
	})
	return g.Wait()
}

// republish sends the transactions of [from, end) of the primary log to the
// standby log, but for those the standby log already holds: every GTID up to
// its last one (published), which the applier skipped as duplicates then too.
func republish(ctx context.Context, rp *republisher, published string, from, end int64, log *slog.Logger) error {
	seen, err := mysql.ParseGTIDSet(published)
	if err != nil {
		return service.Permanent(err)
	}
	out := &outbox{}
	skip := false
	return read(ctx, rp.opts, rp.source, from, end, log, func(r *schemas.Record, rec *kgo.Record, restart bool) error {
		off := rec.Offset
		if r.Txn.Index == 0 && !restart {
			skip = false // position and snapshot records name no transaction
			if r.Binlog() {
				if seen, skip, err = seen.Add(r.Txn.GTID); err != nil {
					return service.Permanentf("%s offset %d: %w", rp.source, off, err)
				}
			}
		}
		if skip {
			return nil
		}
		out.add(r, rec)
		if !r.Txn.Last {
			return nil
		}
		out.madeSpilled = true // what the standby made, from its table
		return rp.publish(ctx, out, time.Now())
	}, nil, nil)
}

// read hands over, in order and checked by a sequencer, the records of the
// primary log from offset from: up to end, or, with end -1, until ctx ends,
// calling idle (if not nil) whenever the records fetched so far are done,
// and fail (if not nil) with a record the sequencer refuses and its offset.
// Following the log, records are fetched and decoded in a goroutine of
// their own, a fetch ahead of fn: decoding overlaps the standby's
// work.
func read(ctx context.Context, opts []kgo.Opt, topic string, from, end int64, log *slog.Logger,
	fn func(r *schemas.Record, rec *kgo.Record, restart bool) error, idle func(context.Context) error, fail func(int64, error) error) error {
	seq := &sequencer{topic: topic, log: log}
	refused := func(off int64, err error) error {
		if fail != nil {
			return fail(off, err)
		}
		return err
	}
	if end >= 0 {
		err := kafka.Scan(ctx, opts, topic, 0, from, end, func(rec *kgo.Record) error {
			r, restart, err := seq.place(rec)
			if err != nil {
				return refused(rec.Offset, err)
			}
			return fn(r, rec, restart)
		})
		if err == nil && seq.gtid != "" {
			err = service.Permanentf("%s offsets %d..%d end inside transaction %s", topic, from, end-1, seq.gtid)
		}
		return err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Never jump silently: an offset out of range is an error.
		kgo.ConsumeResetOffset(kgo.NoResetOffset().AtStart()),
		kafka.WarnUnanswered(log),
	)...)
	if err != nil {
		return service.Permanent(err)
	}
	defer cl.Close()
	g, gctx := errgroup.WithContext(ctx)
	fetches := make(chan decoded, 1)
	g.Go(func() error {
		defer close(fetches)
		return decodeFetches(gctx, cl, seq, topic, from, fetches)
	})
	g.Go(func() error {
		for d := range fetches {
			for _, p := range d.records {
				if err := fn(p.r, p.rec, p.restart); err != nil {
					return err
				}
			}
			if d.err != nil {
				return refused(d.errOff, d.err)
			}
			if idle != nil && !d.more && len(fetches) == 0 {
				if err := idle(gctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// decoded is records of one fetch, decoded and placed by the sequencer; err
// is what the sequencer refused after them, at offset errOff.
type decoded struct {
	records []placed
	more    bool // the fetch has more records, in the next ones
	err     error
	errOff  int64
}

// placed is a record as read (rec) and decoded (r).
type placed struct {
	r       *schemas.Record
	rec     *kgo.Record
	restart bool
}

// decodeFetches fetches the primary log and sends each fetch decoded to out,
// until ctx ends or the sequencer refuses a record.
func decodeFetches(ctx context.Context, cl *kgo.Client, seq *sequencer, topic string, from int64, out chan<- decoded) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return kafka.Classify(fmt.Errorf("read %s from offset %d: %w", topic, from, err))
		}
		metrics.ObserveConsumerLag("applied", fs)
		recs := fs.Records()
		for len(recs) > 0 {
			// A fetch of small rows holds tens of thousands: decoded, they
			// go in parts, so that what is decoded ahead stays small.
			var d decoded
			for _, rec := range recs[:min(len(recs), decodeAhead)] {
				r, restart, err := seq.place(rec)
				if err != nil {
					d.err, d.errOff = err, rec.Offset
					break
				}
				d.records = append(d.records, placed{r: r, rec: rec, restart: restart})
			}
			recs = recs[min(len(recs), decodeAhead):]
			d.more = len(recs) > 0
			select {
			case out <- d:
			case <-ctx.Done():
				return nil
			}
			if d.err != nil {
				return nil
			}
		}
	}
}

// decodeAhead is the most records decoded and not yet applied, twice.
const decodeAhead = 1000
