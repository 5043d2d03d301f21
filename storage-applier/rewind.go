package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/schemas"
)

// rewindCommand points the standby's checkpoint back at an earlier
// transaction of the primary log, so that the storage-applier applies
// from there again: for a standby restored from a backup, or emptied to be
// rebuilt from a log that holds its whole history. It moves only the
// checkpoint; the standby must already hold exactly what precedes that
// transaction, which only the operator knows, hence --confirm.
func rewindCommand() *cobra.Command {
	var from *service.From
	var confirm bool
	cmd := service.Task("rewind", "Point the standby back at an offset or time of the primary log: the storage-applier applies from there again (needs --confirm)",
		func(ctx context.Context, cfg *config.Config, out, _ io.Writer) error {
			if err := from.Parse(); err != nil {
				return err
			}
			return rewind(ctx, cfg, from.Offset, from.Time, confirm, out)
		})
	from = service.FromFlags(cmd, "apply again from this primary-log offset (the first record of a transaction)", "apply again from the first transaction published at or after this time")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "do it: without it the command only says what it would do")
	return cmd
}

func rewind(ctx context.Context, cfg *config.Config, fromOffset int64, since time.Time, confirm bool, out io.Writer) error {
	db, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return err
	}
	defer db.Close()
	held, err := mysql.HoldApplierLock(ctx, db, cfg.Applier.Name)
	if err != nil {
		return err
	}
	defer held.Close()
	topic := cfg.Kafka.PrimaryTopic
	cp, err := loadCheckpoint(ctx, db, cfg.Applier.Name, topic)
	if err != nil {
		return err
	}

	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return err
	}
	b := bounds[0]
	if !since.IsZero() {
		listed, err := kafka.OffsetsAt(ctx, adm, topic, since)
		if err != nil {
			return err
		}
		o, _ := listed.Lookup(topic, 0)
		fromOffset = o.Offset
	}
	if fromOffset > cp.offset+1 {
		return fmt.Errorf("offset %d is past the standby's next offset %d: moving the checkpoint forward would skip transactions the standby never applied", fromOffset, cp.offset+1)
	}
	if fromOffset < b.Start {
		return fmt.Errorf("%s starts at offset %d (retention removed what came before), so it cannot rebuild from offset %d", topic, b.Start, fromOffset)
	}
	at, applied, err := transactionStart(ctx, opts, topic, b, fromOffset, !since.IsZero())
	if err != nil {
		return err
	}
	sb, err := kafka.PartitionBounds(ctx, adm, cfg.Kafka.StandbyTopic)
	if err != nil {
		return err
	}
	published, _, err := status.LastPublished(ctx, opts, cfg.Kafka.StandbyTopic, sb)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "WARNING: rewind of standby checkpoint %q: from offset %d (applied GTIDs %q) back to offset %d (applied GTIDs %q).\n"+
		"The storage-applier will apply offsets %d..%d of %s again. That is right only if the standby holds exactly what the primary log holds before offset %d: "+
		"restored from a backup taken there, or emptied of the replicated databases when the log starts with a snapshot or before the tables were created. Otherwise it stops at the first row that does not fit, or, worse, applies changes over rows that are not the ones they were made to.\n"+
		"Until it passes offset %d (the end of the standby log), the cache may hold values newer than the standby.\n",
		cp.name, cp.offset+1, cp.applied.String(), at, applied.String(), at, b.End-1, topic, at, published)
	if !confirm {
		return errors.New("nothing changed: run again with --confirm to rewind")
	}
	res, err := db.ExecContext(ctx, sqlRewind, at-1, applied.String(), max(published, cp.rewindEnd), cp.name, cp.offset)
	if err == nil {
		if n, _ := res.RowsAffected(); n != 1 {
			err = errFenced(cp.name, cp.offset)
		}
	}
	if err != nil {
		return fmt.Errorf("rewind checkpoint %q: %w", cp.name, err)
	}
	_, err = fmt.Fprintf(out, "rewound: the storage-applier applies from offset %d when it starts\n", at)
	return err
}

// transactionStart reads the primary log from its start up to the
// transaction at offset from and returns that transaction's offset and the
// GTID set the standby has applied before it. With forward, a from inside a
// transaction moves on to the next one (a time lands anywhere); otherwise
// it is an error (an offset should be exact).
func transactionStart(ctx context.Context, opts []kgo.Opt, topic string, b kafka.Bounds, from int64, forward bool) (int64, mysql.GTIDSet, error) {
	applied, _ := mysql.ParseGTIDSet("")
	if from == b.End {
		from = -1 // the end: nothing to apply again but what comes
	}
	at := int64(-1)
	errFound := errors.New("found")
	err := kafka.Scan(ctx, opts, topic, 0, b.Start, b.End, func(kr *kgo.Record) error {
		r, err := schemas.Decode(kr.Value)
		if err != nil {
			return fmt.Errorf("record at %s offset %d: %w", topic, kr.Offset, err)
		}
		if from >= 0 && kr.Offset >= from {
			switch {
			case r.Txn.Index == 0:
				at = kr.Offset
				return errFound
			case !forward:
				return fmt.Errorf("offset %d is row %d of transaction %s, not its first record: rewind to the offset of its first row", kr.Offset, r.Txn.Index, r.Txn.GTID)
			}
		}
		// The primary's position after a binlog transaction is the set the
		// standby has applied once it holds it; snapshot records leave it.
		if r.Txn.Last && !r.Txn.Snapshot && r.Source.GTIDSet != "" {
			if applied, err = mysql.ParseGTIDSet(r.Source.GTIDSet); err != nil {
				return fmt.Errorf("record at %s offset %d: %w", topic, kr.Offset, err)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return at, applied, nil
	case err != nil:
		return 0, mysql.GTIDSet{}, err
	}
	return b.End, applied, nil // no transaction starts there yet: from the end
}
