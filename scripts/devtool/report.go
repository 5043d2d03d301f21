package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
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
	primary, err := mysql.Open(ctx, "primary", cfg.Primary)
	if err != nil {
		return false, err
	}
	defer primary.Close()
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return false, err
	}
	defer standby.Close()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Address, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	rules := cacherule.Compile(cfg.Cache)

	start := time.Now()
	var tables []verify.Table
	var cache *verify.Cache
	for {
		tables, err = verify.Databases(ctx, primary, standby, dbs)
		if err != nil {
			return false, err
		}
		cache, err = verify.CacheAgainst(ctx, standby, rdb, rules, dbs)
		if err != nil {
			return false, err
		}
		if (verify.AllEqual(tables) && cache.OK()) || time.Since(start) > wait {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(start)

	fmt.Println("\nconsistency report")
	fmt.Printf("  %-20s %12s %12s %14s %14s  %s\n", "table", "primary rows", "standby rows", "primary sum", "standby sum", "verdict")
	ok := true
	for _, t := range tables {
		v := "equal"
		if !t.OK() {
			v, ok = "DIFFERENT", false
		}
		fmt.Printf("  %-20s %12d %12d %14d %14d  %s\n", t.Name, t.PrimaryRows, t.StandbyRows, t.PrimarySum.Int64, t.StandbySum.Int64, v)
		for _, d := range t.Diff {
			fmt.Println("    " + d)
		}
	}
	fmt.Printf("  cache: %d keys expected from standby rows, %d checked, %d missing, %d with a different value, %d orphan keys\n",
		cache.Keys, cache.Checked, len(cache.Missing), len(cache.Wrong), len(cache.Orphans))
	for _, l := range []struct {
		what string
		keys []string
	}{{"missing", cache.Missing}, {"different", cache.Wrong}, {"orphan", cache.Orphans}} {
		if len(l.keys) > 0 {
			fmt.Printf("    %s: %s\n", l.what, strings.Join(l.keys[:min(10, len(l.keys))], " "))
		}
	}
	ok = ok && cache.OK()
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
