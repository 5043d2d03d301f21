package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

// failoverCommand makes the standby ready to take over from the primary:
// the primary log is fenced, the standby applies everything in it and the
// cache drains the standby log, both verifies run, and the report says
// what the primary may have committed that the standby lacks. It exits
// non-zero when any of it fails.
func failoverCommand() *cobra.Command {
	var wait time.Duration
	cmd := service.Task("failover", "Fence the primary log, let the standby and its cache apply all of it, verify, and report what may be lost",
		func(ctx context.Context, cfg *config.Config, out, progress io.Writer) error {
			return failover(ctx, cfg, wait, out, progress)
		})
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long the standby and the cache may take to apply what the primary log holds")
	return cmd
}

func failover(ctx context.Context, cfg *config.Config, wait time.Duration, out, progress io.Writer) error {
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return err
	}
	defer standby.Close()
	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	fmt.Fprintf(out, "failover to the standby %s (checkpoint %q)\n", cfg.Standby.Address, cfg.Applier.Name)

	fence, err := fencePrimaryLog(ctx, cfg, opts, adm)
	if err != nil {
		return fmt.Errorf("1/5 fence the primary log: %w", err)
	}
	fmt.Fprintf(out, "1/5 fenced: producer %q can no longer commit to %s; the log ends at offset %d, GTID position %q\n",
		cfg.Producer.TransactionalID, cfg.Kafka.PrimaryTopic, fence.offset, fence.gtids)

	deadline := time.Now().Add(wait)
	var applied string
	took, err := waitFor(ctx, deadline, func() (bool, error) {
		cp, err := mysql.Checkpoint(ctx, standby, cfg.Applier.Name)
		applied = cp.GTIDs
		if err != nil || cp.Offset < fence.offset {
			return false, err
		}
		sb, err := kafka.PartitionBounds(ctx, adm, cfg.Kafka.StandbyTopic)
		if err != nil {
			return false, err
		}
		published, _, err := status.LastPublished(ctx, opts, cfg.Kafka.StandbyTopic, sb)
		return published >= fence.offset, err
	})
	if err != nil {
		return fmt.Errorf("2/5 the storage-applier has not applied and republished through offset %d of %s (storage-applier status shows why): %w", fence.offset, cfg.Kafka.PrimaryTopic, err)
	}
	fmt.Fprintf(out, "2/5 the standby applied everything through offset %d (GTIDs %q) and republished it [%s]\n", fence.offset, applied, took.Round(time.Millisecond))

	took, err = waitFor(ctx, deadline, func() (bool, error) {
		s, err := status.Cache(ctx, cfg, opts, adm)
		return err == nil && s.Behind == 0, err
	})
	if err != nil {
		return fmt.Errorf("3/5 the cache-applier (group %s) has not drained %s (cache-applier status shows why): %w", cfg.Cache.Group, cfg.CacheTopic(), err)
	}
	fmt.Fprintf(out, "3/5 the cache-applier drained %s [%s]\n", cfg.CacheTopic(), took.Round(time.Millisecond))

	// The primary may be gone with its site: the storage comparison and the
	// exact loss need it, the rest does not.
	primary, perr := mysql.Open(ctx, "primary", cfg.Primary)
	if perr == nil {
		defer primary.Close()
	}
	unreachable := func() {
		fmt.Fprintf(out, "  storage: NOT COMPARED: the primary %s is unreachable (%v)\n  schema: NOT COMPARED either\n", cfg.Primary.Address, perr)
	}
	fmt.Fprintln(out, "4/5 verify:")
	if perr != nil {
		unreachable()
	}
	equal, _, err := verify.Check(ctx, cfg, verify.What{Cache: true, Storage: perr == nil, Schema: perr == nil}, cfg.Primary.Databases, 0, out, progress)
	if err != nil && perr == nil {
		// The site may go while the comparison runs: then it is as if it
		// had gone before.
		if perr = lost(ctx, primary, "the comparison", err); perr != nil {
			unreachable()
			equal, _, err = verify.Check(ctx, cfg, verify.What{Cache: true}, cfg.Primary.Databases, 0, out, progress)
		}
	}
	if err != nil {
		return fmt.Errorf("4/5 verify: %w", err)
	}

	fmt.Fprintln(out, "5/5 what may be lost:")
	if perr == nil {
		head, n, err := mysql.Unapplied(ctx, primary, applied)
		if err == nil {
			fmt.Fprintf(out, "  the primary is at GTID position %q, the standby applied %q: the primary committed %d transaction(s) the standby does not have (on any database; lockstep carries only the replicated ones)\n", head, applied, n)
		} else if perr = lost(ctx, primary, "the count", err); perr == nil {
			return fmt.Errorf("5/5: %w", err)
		}
	}
	if perr != nil {
		fmt.Fprintf(out, "  the primary is unreachable: the standby holds everything the primary log holds, through GTID position %q. Transactions the primary committed after it, before the producer published them, are not on the standby: when the old primary is back, compare its GTID position (gtid_binlog_pos on MariaDB, gtid_executed on MySQL) with that position\n", fence.gtids)
	}
	if err := writable(ctx, standby, out); err != nil {
		return err
	}
	if err := wakeEvents(ctx, standby, cfg.Primary.Databases, out); err != nil {
		return err
	}
	if !equal {
		return errors.New("the standby is caught up but differs (see the verify above): do not serve from it before you know why")
	}
	fmt.Fprintf(out, "READY: the standby %s holds everything the primary log held and its cache matches it; point the applications at it. Stop this site's storage-applier (nothing more will come) and keep the old primary's producer stopped\n", cfg.Standby.Address)
	return nil
}

// lost says whether the primary went while failover used it (for what,
// failing with err): the site may go at any step, and is then as gone as
// if it had gone before failover started. nil: it still answers, and err
// is failover's own.
func lost(ctx context.Context, primary *sql.DB, what string, err error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if gone := primary.PingContext(ctx); gone != nil {
		return fmt.Errorf("lost during %s: %w; %w", what, err, gone)
	}
	return nil
}

// logEnd is where the fenced primary log ends.
type logEnd struct {
	offset int64  // of its last record; -1 when empty
	gtids  string // the GTID position after it
}

// fencePrimaryLog takes over the producer's Kafka transactional id: the
// broker aborts any transaction the producer has open and refuses it
// every later commit, so the log's end is final. A producer that starts
// again takes the id back: it must stay stopped.
func fencePrimaryLog(ctx context.Context, cfg *config.Config, opts []kgo.Opt, adm *kadm.Client) (logEnd, error) {
	cl, err := kgo.NewClient(append(opts, kgo.TransactionalID(cfg.Producer.TransactionalID), kgo.TransactionTimeout(cfg.Kafka.TransactionTimeout))...)
	if err != nil {
		return logEnd{}, err
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return logEnd{}, fmt.Errorf("take over transactional id %q: %w", cfg.Producer.TransactionalID, err)
	}
	topic := cfg.Kafka.PrimaryTopic
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return logEnd{}, err
	}
	last, err := kafka.LastCommitted(ctx, opts, topic, 0, bounds[0])
	if err != nil || last == nil {
		return logEnd{offset: -1}, err
	}
	r, err := schemas.Decode(last.Value)
	if err != nil {
		return logEnd{}, fmt.Errorf("last record of %s at offset %d: %w", topic, last.Offset, err)
	}
	return logEnd{offset: last.Offset, gtids: r.Source.GTIDSet}, nil
}

// waitFor polls done until it holds, fails, or the deadline passes.
func waitFor(ctx context.Context, deadline time.Time, done func() (bool, error)) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := done()
		if ok || err != nil {
			return time.Since(start), err
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("not done after %s (--wait)", time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// writable turns off the standby's read_only, which keeps applications
// from writing to a standby, so that it can serve.
func writable(ctx context.Context, standby *sql.DB, out io.Writer) error {
	ro, err := mysql.ReadOnly(ctx, standby)
	if err != nil {
		return fmt.Errorf("standby: %w", err)
	}
	if !ro {
		fmt.Fprintln(out, "  the standby takes writes (read_only is OFF)")
		return nil
	}
	if _, err := standby.ExecContext(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		return fmt.Errorf("turn off the standby's read_only so that it takes writes (the user needs READ_ONLY ADMIN or SUPER; MySQL: SYSTEM_VARIABLES_ADMIN): %w", err)
	}
	fmt.Fprintln(out, "  the standby's read_only was ON: turned OFF, it takes writes")
	return nil
}
