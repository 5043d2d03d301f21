package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// reseedCommand starts the primary log anew at what the standby holds, for
// when Kafka lost it: the standby database still knows exactly what it
// applied (its checkpoint's GTID set), and the primary still has the binlog
// from there.
func reseedCommand() *cobra.Command {
	var fromStandby, confirm bool
	cmd := service.Task("reseed", "After Kafka lost the logs: start the primary log anew at the standby's applied position, and move the standby onto it in a new epoch",
		func(ctx context.Context, cfg *config.Config, out, _ io.Writer) error {
			if !fromStandby {
				return fmt.Errorf("say where the new primary log starts: --from-standby (the standby's applied position; the only one there is)")
			}
			return reseed(ctx, cfg, service.Logger(cfg.Log, "producer"), confirm, out)
		})
	cmd.Flags().BoolVar(&fromStandby, "from-standby", false, "start at the GTID set the standby's checkpoint (applier.name) holds")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "do it; without it, check everything and say what would be done")
	return cmd
}

func reseed(ctx context.Context, cfg *config.Config, log *slog.Logger, confirm bool, out io.Writer) error {
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return err
	}
	defer standby.Close()
	// Holding the applier's lock keeps a storage-applier from starting
	// while the checkpoint moves.
	lock, err := mysql.HoldApplierLock(ctx, standby, cfg.Applier.Name)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := mysql.PrepareCheckpoint(ctx, standby); err != nil {
		return err
	}
	applied, err := mysql.Checkpoint(ctx, standby, cfg.Applier.Name)
	if err != nil {
		return err
	}
	if applied.GTIDs == "" {
		return fmt.Errorf("the standby checkpoint %q holds no applied position: there is nothing to start from; bootstrap the standby (producer snapshot on an empty primary log)", cfg.Applier.Name)
	}
	set, err := mysql.ParseGTIDSet(applied.GTIDs)
	if err != nil {
		return fmt.Errorf("the standby checkpoint %q: %w", cfg.Applier.Name, err)
	}

	primary, err := mysql.Open(ctx, "primary", cfg.Primary)
	if err != nil {
		return err
	}
	defer primary.Close()
	flavor, err := preflight(ctx, primary, cfg.Primary.Address, log)
	if err != nil {
		return err
	}
	if set.Flavor() != flavor {
		return fmt.Errorf("the standby checkpoint %q holds a %s GTID set and the primary is %s: it was applied from another primary", cfg.Applier.Name, set.Flavor(), flavor)
	}
	if err := binlogHolds(ctx, cfg, flavor, set, log); err != nil {
		return err
	}

	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	plog, err := readPrimaryLog(ctx, opts, adm, cfg.Kafka.PrimaryTopic)
	if err != nil {
		return err
	}
	found, err := plog.replaceable(cfg.Kafka.PrimaryTopic, applied)
	if err != nil {
		return err
	}
	// Its records are of the primary log that was lost, whose offsets the
	// new one reuses.
	if rec, err := kafka.Holds(ctx, opts, adm, cfg.Kafka.StandbyTopic); err != nil || rec != nil {
		if err == nil {
			err = fmt.Errorf("the standby log %s still holds records (partition %d, up to offset %d), of the primary log that was lost: reseed starts both logs anew. Delete topic %s too (the cache-applier then rebuilds the cache from the standby), then run reseed again",
				cfg.Kafka.StandbyTopic, rec.Partition, rec.Offset, cfg.Kafka.StandbyTopic)
		}
		return err
	}

	fmt.Fprintf(out, "standby checkpoint %q: applied %s (offset %d of the primary log of epoch %d)\n", cfg.Applier.Name, applied.GTIDs, applied.Offset, applied.Epoch)
	fmt.Fprintf(out, "primary %s: holds its binlog from there\n", cfg.Primary.Address)
	fmt.Fprintf(out, "primary log %s: %s\nstandby log %s: empty\n", cfg.Kafka.PrimaryTopic, found, cfg.Kafka.StandbyTopic)
	if !confirm {
		fmt.Fprintf(out, "would start the primary log at %s and move the standby checkpoint to epoch %d; run again with --confirm (the producer stopped), then start the producer, the storage-applier and the cache-applier (which rebuilds the cache from the standby)\n",
			applied.GTIDs, applied.Epoch+1)
		return nil
	}

	info, err := emptyPrimaryLog(ctx, adm, cfg.Kafka, plog.records > 0)
	if err != nil {
		return err
	}
	start, err := writeStart(ctx, cfg, opts, adm, applied.GTIDs, log)
	if err != nil {
		return err
	}
	if err := mysql.NewEpoch(ctx, standby, cfg.Applier.Name, applied, info.ID, start); err != nil {
		return err
	}
	fmt.Fprintf(out, "primary log %s (id %s) starts at %s; standby checkpoint %q moved to epoch %d. Start the producer, the storage-applier and the cache-applier\n",
		cfg.Kafka.PrimaryTopic, info.ID, applied.GTIDs, cfg.Applier.Name, applied.Epoch+1)
	return nil
}

// binlogHolds checks that the primary can still send its binlog after set:
// it starts a stream there and reads for a moment, as the producer will.
func binlogHolds(ctx context.Context, cfg *config.Config, flavor mysql.Flavor, set mysql.GTIDSet, log *slog.Logger) error {
	syncer, stream, err := openBinlog(*cfg, flavor, set, log)
	if err != nil {
		return err
	}
	defer syncer.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		_, err := stream.GetEvent(rctx)
		var me *gomysql.MyError
		switch {
		case rctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &me) && me.Code == 1236:
			return fmt.Errorf("the primary no longer has the binlog after the standby's position %s (%s): the standby cannot be continued from it. Bootstrap it again: producer snapshot on an empty primary log", set, me.Message)
		case err != nil:
			return mysql.Classify(fmt.Errorf("read the primary's binlog after %s: %w", set, err))
		}
	}
}

// primaryLog is what a primary log holds, committed.
type primaryLog struct {
	id string // "" when the topic does not exist
	// records counts them; positions the start positions among them.
	records, positions int
	first              *schemas.Record
	lastOffset         int64
}

func readPrimaryLog(ctx context.Context, opts []kgo.Opt, adm *kadm.Client, topic string) (primaryLog, error) {
	var l primaryLog
	info, ok, err := kafka.Describe(ctx, adm, topic)
	if err != nil || !ok {
		return l, err
	}
	l.id = info.ID
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return l, err
	}
	for p, b := range bounds {
		err := kafka.Scan(ctx, opts, topic, p, b.Start, b.End, func(rec *kgo.Record) error {
			r, err := schemas.Decode(rec.Value)
			if err != nil {
				return fmt.Errorf("the primary log %s at offset %d: %w", topic, rec.Offset, err)
			}
			if l.records == 0 {
				l.first = r
			}
			l.records++
			if r.Op == schemas.OpPosition {
				l.positions++
			}
			l.lastOffset = rec.Offset
			return nil
		})
		if err != nil {
			return l, err
		}
	}
	return l, nil
}

// replaceable says why the primary log may be started anew, or refuses it:
// it is empty; it holds start positions alone (a producer met the empty
// log); or it is a stream a producer started on the empty log (its first
// record is a start position) that the standby never applied (the log is
// not the one the checkpoint was written for). Anything else was not lost.
func (l primaryLog) replaceable(topic string, applied mysql.Applied) (string, error) {
	switch {
	case l.records == 0:
		return "empty", nil
	case l.positions == l.records:
		return fmt.Sprintf("%d start positions and nothing else (a producer met the empty log): re-created without them", l.records), nil
	case l.first.Op == schemas.OpPosition && l.id != applied.TopicID && applied.TopicID != "":
		return fmt.Sprintf("a stream a producer started on the empty log at %s, which the standby never applied (its id %s is not the checkpoint's %s): re-created without it", l.first.Source.GTIDSet, l.id, applied.TopicID), nil
	}
	return "", fmt.Errorf("the primary log %s holds a stream the standby applies from (its first record is a %s record, its id %s; the standby checkpoint is of %q): it was not lost, and reseed is for a primary log Kafka lost",
		topic, l.first.Op, l.id, applied.TopicID)
}

// emptyPrimaryLog is the primary log's topic, created if missing; with
// drop, deleted first and created again, waiting until the broker lets it
// (deletion may take a moment) and serves it.
func emptyPrimaryLog(ctx context.Context, adm *kadm.Client, c config.Kafka, drop bool) (kafka.Topic, error) {
	if !drop {
		return kafka.EnsureTopic(ctx, adm, c.PrimaryTopic, 1, c.MaxMessageBytes)
	}
	resp, err := adm.DeleteTopic(ctx, c.PrimaryTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return kafka.Topic{}, kafka.Classify(fmt.Errorf("delete the primary log %s to start it again: %w", c.PrimaryTopic, err))
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		info, err := kafka.EnsureTopic(ctx, adm, c.PrimaryTopic, 1, c.MaxMessageBytes)
		if err == nil {
			// served by its leader, as a producer will need it
			_, err = kafka.PartitionBounds(ctx, adm, c.PrimaryTopic)
		}
		if err == nil || time.Now().After(deadline) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return kafka.Topic{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeStart commits the start position at pos to the empty primary log,
// with the producer's transactional id (which fences a producer still
// running), checks that it is the log's one record, and returns its offset.
func writeStart(ctx context.Context, cfg *config.Config, opts []kgo.Opt, adm *kadm.Client, pos string, log *slog.Logger) (int64, error) {
	w, err := newWriter(cfg, opts, log)
	if err != nil {
		return 0, err
	}
	defer w.Client.Close()
	topic := cfg.Kafka.PrimaryTopic
	if err := commitStart(ctx, w, topic, pos); err != nil {
		return 0, err
	}
	l, err := readPrimaryLog(ctx, opts, adm, topic)
	if err == nil && l.records != 1 {
		err = fmt.Errorf("the primary log %s holds %d records, not only the start position: a producer wrote to it while reseed ran. Stop the producer, and run reseed again", topic, l.records)
	}
	return l.lastOffset, err
}
