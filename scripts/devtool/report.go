package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

func reportCmd(load func() (*config.Config, error)) *cobra.Command {
	var wait time.Duration
	var dbs []string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Wait for the pipeline to drain, then compare primary, standby and cache",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			ok, err := report(cmd.Context(), cfg, dbs, wait)
			if err != nil {
				return err
			}
			if !ok {
				os.Exit(2)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the pipeline to drain")
	cmd.Flags().StringSliceVar(&dbs, "databases", []string{"shop"}, "databases to compare")
	return cmd
}

// report polls until primary, standby and cache agree or wait runs out,
// then prints the comparison; the verdict is the last comparison made.
func report(ctx context.Context, cfg *config.Config, dbs []string, wait time.Duration) (bool, error) {
	fmt.Println("\nconsistency report")
	ok, drained, err := verify.Check(ctx, cfg, verify.What{Storage: true, Cache: true}, dbs, wait, os.Stdout, nil)
	if err != nil {
		return false, err
	}
	fmt.Printf("  drained %.1fs after the workload ended\n", drained.Seconds())
	if err := carried(ctx, cfg); err != nil {
		return false, err
	}
	if ok {
		fmt.Println("VERDICT: CONSISTENT (standby DB == primary DB, cache == standby DB)")
	} else {
		fmt.Println("VERDICT: INCONSISTENT")
	}
	return ok, nil
}

// carried reads the standby log and prints how much went through and how
// fast, from the standby commit times the records carry.
func carried(ctx context.Context, cfg *config.Config) error {
	opts, err := kafka.Options(cfg.Kafka)
	if err != nil {
		return err
	}
	topic := cfg.Kafka.StandbyTopic
	var rows, txns int
	first, last := int64(math.MaxInt64), int64(0)
	err = kafka.ScanTopic(ctx, opts, topic, func(_ *kgo.Record, rec *schemas.Record) error {
		rows++
		if rec.Txn.Last {
			txns++
		}
		first, last = min(first, rec.Standby.CommitTimeMS), max(last, rec.Standby.CommitTimeMS)
		return nil
	})
	if err != nil {
		return err
	}
	if rows == 0 {
		fmt.Printf("  standby log %s is empty\n", topic)
		return nil
	}
	span := time.Duration(last-first) * time.Millisecond
	fmt.Printf("  carried: %d row records in %d transactions through the standby log; %.0f rows/s between the first and last standby commit (%.1fs)\n",
		rows, txns, float64(rows)/max(span.Seconds(), 0.001), span.Seconds())
	return nil
}
