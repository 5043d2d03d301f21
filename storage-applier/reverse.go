package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// reverseCommand makes the old primary the standby of the new one after a
// failover. It runs with the reversed config: primary is the new primary
// (the old standby), standby the old primary, and the topics, applier
// name and cache group new. The old primary is brought in step by a
// snapshot, not rewound: what it committed that the new primary lacks (lost
// at the failover) and what the new primary committed since cannot be
// merged, so its replicated databases are dropped and producer snapshot
// fills them from the new primary. Its checkpoint starts one epoch above
// every epoch the new primary's checkpoints reached, so that its Redis,
// whose keys carry versions of the old logs, is corrected (the
// cache-applier rebuilds it from the standby, every version greater than
// the old ones), not flushed.
func reverseCommand() *cobra.Command {
	var confirm bool
	cmd := service.Task("reverse", "After a failover, with the reversed config (primary: the new primary; standby: the old primary; new topics): make the old primary the new standby, in the next epoch",
		func(ctx context.Context, cfg *config.Config, out, _ io.Writer) error {
			return reverse(ctx, cfg, confirm, out)
		})
	cmd.Flags().BoolVar(&confirm, "confirm", false, "do it (drops the replicated databases on the standby); without it, check everything and say what would be done")
	return cmd
}

func reverse(ctx context.Context, cfg *config.Config, confirm bool, out io.Writer) error {
	if len(cfg.Primary.Databases) == 0 {
		return fmt.Errorf("primary.databases is empty (every database): reverse drops the replicated databases on the new standby, so name them")
	}
	primary, err := mysql.Open(ctx, "primary", cfg.Primary)
	if err != nil {
		return err
	}
	defer primary.Close()
	epoch, err := lastEpoch(ctx, primary, cfg.Primary.Address)
	if err != nil {
		return err
	}
	if ro, err := mysql.ReadOnly(ctx, primary); err != nil {
		return err
	} else if ro {
		return fmt.Errorf("the primary %s is read-only: it is still a standby. Run storage-applier failover (with the config of the pipeline into it) first", cfg.Primary.Address)
	}
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return err
	}
	defer standby.Close()
	held, err := mysql.HoldApplierLock(ctx, standby, cfg.Applier.Name)
	if err != nil {
		return err
	}
	defer held.Close()
	if err := notApplied(ctx, standby, cfg.Applier.Name); err != nil {
		return err
	}

	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	for _, topic := range []string{cfg.Kafka.PrimaryTopic, cfg.Kafka.StandbyTopic} {
		if rec, err := kafka.Holds(ctx, opts, adm, topic); err != nil || rec != nil {
			if err == nil {
				err = fmt.Errorf("topic %s holds records (partition %d, up to offset %d): the reversed pipeline starts on new topics; name new ones in kafka.primary_topic and kafka.standby_topic", topic, rec.Partition, rec.Offset)
			}
			return err
		}
	}
	drop, err := existing(ctx, standby, cfg.Primary.Databases)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "new primary %s: writable; its checkpoints reached epoch %d\n", cfg.Primary.Address, epoch)
	fmt.Fprintf(out, "topics %s and %s: empty\n", cfg.Kafka.PrimaryTopic, cfg.Kafka.StandbyTopic)
	fmt.Fprintf(out, "new standby %s: replicated databases to drop: %s\n", cfg.Standby.Address, listOrNone(drop))
	if !confirm {
		fmt.Fprintf(out, "would drop them and start checkpoint %q there at epoch %d; run again with --confirm, then producer snapshot and the three services, all with this config\n", cfg.Applier.Name, epoch+1)
		return nil
	}
	for _, db := range drop {
		if _, err := standby.ExecContext(ctx, "DROP DATABASE "+mysql.Quote(db)); err != nil {
			return mysql.Classify(fmt.Errorf("drop database %s on the new standby %s: %w", db, cfg.Standby.Address, err))
		}
	}
	if err := mysql.PrepareCheckpoint(ctx, standby); err != nil {
		return err
	}
	if _, err := standby.ExecContext(ctx, "DELETE FROM lockstep.checkpoint WHERE name = ?", cfg.Applier.Name); err != nil {
		return mysql.Classify(fmt.Errorf("clear checkpoint %q on the new standby: %w", cfg.Applier.Name, err))
	}
	if _, err := standby.ExecContext(ctx, sqlInsertCheckpoint, cfg.Applier.Name, cfg.Kafka.PrimaryTopic, epoch+1); err != nil {
		return mysql.Classify(fmt.Errorf("create checkpoint %q on the new standby: %w", cfg.Applier.Name, err))
	}
	fmt.Fprintf(out, "the new standby %s is empty of the replicated databases and its checkpoint %q starts at epoch %d. Now, with this config: producer snapshot, then the producer, the storage-applier and the cache-applier (which rebuilds this site's cache from the standby)\n",
		cfg.Standby.Address, cfg.Applier.Name, epoch+1)
	return nil
}

// lastEpoch is the greatest epoch of the checkpoints a server kept while it
// was a standby: its cache's versions are of that epoch or older.
func lastEpoch(ctx context.Context, db *sql.DB, address string) (int64, error) {
	var epoch sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT MAX(epoch) FROM lockstep.checkpoint").Scan(&epoch)
	if mysql.NoCheckpoint(err) || (err == nil && !epoch.Valid) {
		return 0, fmt.Errorf("the primary %s has no lockstep checkpoint: it was never a lockstep standby, so there is nothing to reverse. To start a standby from it, bootstrap (producer snapshot)", address)
	}
	if err != nil {
		return 0, mysql.Classify(fmt.Errorf("read the checkpoints of %s: %w", address, err))
	}
	return epoch.Int64, nil
}

// notApplied refuses a standby whose checkpoint of this name has applied
// already.
func notApplied(ctx context.Context, standby *sql.DB, name string) error {
	cp, err := mysql.Checkpoint(ctx, standby, name)
	if err == nil && cp.Offset >= 0 {
		err = fmt.Errorf("checkpoint %q on the new standby has applied offset %d already: this pipeline was started; name a new applier.name for the reversed one", name, cp.Offset)
	}
	return err
}

// existing are those of dbs the server has.
func existing(ctx context.Context, db *sql.DB, dbs []string) ([]string, error) {
	var have []string
	for _, name := range dbs {
		var n int
		if err := db.QueryRowContext(ctx, sqlSchemaExists, name).Scan(&n); err != nil {
			return nil, mysql.Classify(fmt.Errorf("look for database %s: %w", name, err))
		}
		if n > 0 {
			have = append(have, name)
		}
	}
	return have, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
