package verify

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// What says which comparisons a check makes.
type What struct{ Storage, Cache, Schema bool }

// Check compares what it is asked to (storage: primary vs standby, table by
// table; cache: every key the rules define vs the standby) over the
// replicated databases, again and again while the two sides still differ
// and wait has not passed (the standby may be catching up), then prints the
// last comparison to out. It returns whether everything compared equal and
// how long it took to get there.
func Check(ctx context.Context, cfg *config.Config, what What, dbs []string, wait time.Duration, out, progress io.Writer) (bool, time.Duration, error) {
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return false, 0, err
	}
	defer standby.Close()
	// Each comparison returns its part of the report and whether it holds.
	var compares []func() (string, bool, error)
	if what.Storage || what.Schema {
		primary, err := mysql.Open(ctx, "primary", cfg.Primary)
		if err != nil {
			return false, 0, err
		}
		defer primary.Close()
		if what.Schema {
			compares = append(compares, func() (string, bool, error) {
				var carried func(string) bool
				if len(cfg.Primary.Accounts) > 0 {
					carried = cfg.CarriedAccount
				}
				diffs, n, err := Schemas(ctx, primary, standby, dbs, carried)
				return schemaReport(diffs, n), len(diffs) == 0, err
			})
		}
		if what.Storage {
			compares = append(compares, func() (string, bool, error) {
				tables, err := Databases(ctx, primary, standby, dbs, wait, progress)
				return StorageReport(tables), AllEqual(tables), err
			})
		}
	}
	if what.Cache {
		rdb, err := redisconn.Open(ctx, cfg.Redis)
		if err != nil {
			return false, 0, err
		}
		defer rdb.Close()
		rules := cacherule.Compile(cfg.Cache, cfg.Primary.Databases)
		compares = append(compares, func() (string, bool, error) {
			c, err := CacheAgainst(ctx, standby, rdb, rules, dbs, progress)
			if err != nil {
				return "", false, err
			}
			return cacheReport(c), c.OK(), nil
		})
	}
	start := time.Now()
	for {
		var report strings.Builder
		ok := true
		for _, compare := range compares {
			part, holds, err := compare()
			if err != nil {
				return false, 0, err
			}
			report.WriteString(part)
			ok = ok && holds
		}
		if ok || time.Since(start) > wait {
			_, err := io.WriteString(out, report.String())
			return ok, time.Since(start), err
		}
		select {
		case <-ctx.Done():
			return false, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StorageReport renders the comparison of the tables, one line each with
// the rows that differ under it.
func StorageReport(tables []Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-20s %12s %12s %8s  %s\n", "table", "primary rows", "standby rows", "chunks", "verdict")
	for _, t := range tables {
		v := "equal"
		switch {
		case t.MissingPrimary:
			v = "DIFFERENT: not on the primary"
		case t.MissingStandby:
			v = "DIFFERENT: not on the standby"
		case t.Columns != "":
			v = "DIFFERENT: " + t.Columns
		case !t.OK():
			v = fmt.Sprintf("DIFFERENT: %d chunk(s) differ", t.Differing)
		}
		fmt.Fprintf(&b, "  %-20s %12d %12d %8d  %s\n", t.Name, t.PrimaryRows, t.StandbyRows, t.Chunks, v)
		for _, d := range t.Diff {
			fmt.Fprintln(&b, "    "+d)
		}
	}
	return b.String()
}

func schemaReport(diffs []Object, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  schema: %d objects compared (tables, views, sequences, triggers, routines, events; carried accounts), %d differ\n", n, len(diffs))
	for _, d := range diffs {
		fmt.Fprintf(&b, "    DIFFERENT: %s %s: %s\n", d.Kind, d.Name, d.Diff)
	}
	return b.String()
}

func cacheReport(c *Cache) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  cache: %d keys expected from standby rows, %d checked, %d missing, %d with a different value, %d orphan keys\n",
		c.Keys, c.Checked, len(c.Missing), len(c.Wrong), len(c.Orphans))
	for _, l := range []struct {
		what string
		keys []string
	}{{"missing", c.Missing}, {"different", c.Wrong}, {"orphan", c.Orphans}} {
		if len(l.keys) > 0 {
			fmt.Fprintf(&b, "    %s: %s\n", l.what, strings.Join(l.keys[:min(10, len(l.keys))], " "))
		}
	}
	return b.String()
}

// Command is the verify subcommand every service binary has: verify
// storage, verify cache; it exits non-zero on a difference.
func Command() *cobra.Command {
	cmd := &cobra.Command{Use: "verify", Short: "Compare the standby with the primary (storage, schema) or the cache with the standby (cache)"}
	for _, c := range []struct {
		name, short string
		what        What
	}{
		{"storage", "Compare every replicated table of the primary and the standby, row for row", What{Storage: true}},
		{"cache", "Compare every key the cache rules define with the standby's rows", What{Cache: true}},
		{"schema", "Compare the replicated databases' objects (tables, views, sequences, triggers, routines, events) of the primary and the standby", What{Schema: true}},
	} {
		var wait time.Duration
		sub := service.Task(c.name, c.short, func(ctx context.Context, cfg *config.Config, out, progress io.Writer) error {
			ok, _, err := Check(ctx, cfg, c.what, cfg.Primary.Databases, wait, out, progress)
			if err == nil && !ok {
				err = fmt.Errorf("%s differs (after re-checking for %s)", c.name, wait)
			}
			return err
		})
		sub.Flags().DurationVar(&wait, "wait", 30*time.Second, "re-check differences for this long: the standby may be catching up")
		cmd.AddCommand(sub)
	}
	return cmd
}
