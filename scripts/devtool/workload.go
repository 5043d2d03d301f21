package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
)

const demoSchema = `
CREATE DATABASE IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.users (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(191) NOT NULL UNIQUE,
  name VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL,
  balance DECIMAL(14,2) NOT NULL DEFAULT 0,
  status ENUM('new','active','suspended') NOT NULL DEFAULT 'new',
  avatar VARBINARY(32) NULL,
  updated DATETIME(6) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS shop.orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  note TEXT CHARACTER SET utf8mb4 NULL,
  created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY (user_id)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS shop.stock (
  sku VARCHAR(32) NOT NULL PRIMARY KEY,
  qty INT UNSIGNED NOT NULL
) ENGINE=InnoDB;
`

type counts struct{ txns, rows, rolledBack, probes int }

func workloadCmd(load func() (*config.Config, error)) *cobra.Command {
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "workload",
		Short: "Create the demo schema and write to the primary for a bounded time",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := mysql.Open(ctx, "primary", cfg.Primary)
			if err != nil {
				return err
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, demoSchema); err != nil {
				return fmt.Errorf("create demo schema: %w", err)
			}
			rdb, err := redisconn.Open(ctx, cfg.Redis)
			if err != nil {
				return err
			}
			defer rdb.Close()
			return workload(ctx, db, rdb, cfg.Cache.KeyPrefix, duration)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 20*time.Second, "how long to write")
	return cmd
}

func workload(ctx context.Context, db *sql.DB, rdb redis.UniversalClient, prefix string, d time.Duration) error {
	var c counts
	var lags []time.Duration
	start := time.Now()
	nextProbe := start
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	for time.Since(start) < d {
		if time.Now().After(nextProbe) {
			lag, err := probe(ctx, db, rdb, prefix)
			if err != nil {
				return err
			}
			lags = append(lags, lag)
			c.probes++
			nextProbe = time.Now().Add(500 * time.Millisecond)
			continue
		}
		rows, committed, err := step(ctx, db, rng)
		if err != nil {
			return err
		}
		if committed {
			c.txns++
			c.rows += rows
		} else {
			c.rolledBack++
		}
	}
	el := time.Since(start)
	fmt.Printf("workload: %d transactions committed (%d row changes), %d rolled back, in %.1fs (%.0f txn/s on one connection)\n",
		c.txns, c.rows, c.rolledBack, el.Seconds(), float64(c.txns)/el.Seconds())
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if len(lags) > 0 {
		fmt.Printf("end-to-end lag, primary commit -> key in Redis, %d probes during the workload: p50 %s, p99 %s, max %s\n",
			len(lags), lags[len(lags)/2].Round(time.Millisecond), lags[len(lags)*99/100].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	}
	return nil
}

// probe inserts a user and waits until its key is in Redis: the lag of the
// whole pipeline, primary commit to cache write.
func probe(ctx context.Context, db *sql.DB, rdb redis.UniversalClient, prefix string) (time.Duration, error) {
	res, err := db.ExecContext(ctx, "INSERT INTO shop.users (email, name, updated) VALUES (CONCAT('probe-', UUID()), 'probe', NOW(6))")
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	id, _ := res.LastInsertId()
	key := fmt.Sprintf("%suser:%d", prefix, id)
	for time.Since(t0) < 30*time.Second {
		n, err := rdb.Exists(ctx, key).Result()
		if err != nil {
			return 0, err
		}
		if n == 1 {
			return time.Since(t0), nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("probe key %s did not reach Redis within 30s: is the pipeline running? (see .dev/*/ logs)", key)
}

// step runs one random transaction; it returns the rows it changed and
// whether it committed.
func step(ctx context.Context, db *sql.DB, rng *rand.Rand) (int, bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback() //nolint:errcheck
	var maxID int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM shop.users").Scan(&maxID); err != nil {
		return 0, false, err
	}
	uid := rng.Int64N(maxID+1) + 1
	exec := func(q string, args ...any) (int, error) {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
		n, _ := res.RowsAffected()
		return int(n), nil
	}
	total := 0
	add := func(n int, err error) error { total += n; return err }
	kind := rng.IntN(100)
	switch {
	case kind < 25 || maxID < 20: // new user
		err = add(exec("INSERT INTO shop.users (email, name, balance, status, avatar, updated) VALUES (CONCAT('u', UUID(), '@example.com'), ?, ?, 'new', ?, NOW(6))",
			fmt.Sprintf("Zoë 🦊 %d", rng.IntN(1e6)), fmt.Sprintf("%d.%02d", rng.IntN(1e5), rng.IntN(100)), []byte{0, byte(rng.IntN(256)), 0xff, '\n'}))
	case kind < 50: // update, sometimes the email (a key column of the cache)
		err = add(exec("UPDATE shop.users SET balance = balance + 1.25, status = 'active', updated = NOW(6) WHERE id = ?", uid))
		if err == nil && rng.IntN(3) == 0 {
			err = add(exec("UPDATE shop.users SET email = CONCAT('changed-', UUID(), '@example.com') WHERE id = ?", uid))
		}
	case kind < 60: // delete a user and their orders: two tables, one transaction
		err = add(exec("DELETE FROM shop.orders WHERE user_id = ?", uid))
		if err == nil {
			err = add(exec("DELETE FROM shop.users WHERE id = ?", uid))
		}
	case kind < 90: // an order: several rows in three tables
		n := 1 + rng.IntN(8)
		for i := 0; i < n && err == nil; i++ {
			err = add(exec("INSERT INTO shop.orders (user_id, amount, note) VALUES (?, ?, ?)", uid, fmt.Sprintf("%d.%02d", rng.IntN(500), rng.IntN(100)), "größe M ✓"))
		}
		sku := fmt.Sprintf("sku-%03d", rng.IntN(50))
		if err == nil {
			err = add(exec("INSERT INTO shop.stock (sku, qty) VALUES (?, 1000) ON DUPLICATE KEY UPDATE qty = GREATEST(qty, ?) - ?", sku, n, n))
		}
		if err == nil {
			err = add(exec("UPDATE shop.users SET balance = balance - 1, updated = NOW(6) WHERE id = ?", uid))
		}
	default: // changes that are rolled back never appear anywhere
		if err = add(exec("INSERT INTO shop.users (email, name, updated) VALUES (CONCAT('rolled-back-', UUID()), 'ghost', NOW(6))")); err == nil {
			err = add(exec("UPDATE shop.stock SET qty = 0"))
		}
		if err != nil {
			return 0, false, err
		}
		return 0, false, tx.Rollback()
	}
	if err != nil {
		return 0, false, err
	}
	return total, true, tx.Commit()
}
