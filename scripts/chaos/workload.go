package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

const (
	hotRows  = 10
	accounts = 200
)

const chaosSchema = `
CREATE DATABASE IF NOT EXISTS chaos;
CREATE TABLE IF NOT EXISTS chaos.hot (id INT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(64) NOT NULL);
CREATE TABLE IF NOT EXISTS chaos.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL, owner VARCHAR(64) NOT NULL);
CREATE TABLE IF NOT EXISTS chaos.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL);
`

func (s *stack) prepareSchema(ctx context.Context) error {
	if _, err := s.primary.ExecContext(ctx, chaosSchema); err != nil {
		return fmt.Errorf("create the chaos schema: %w", err)
	}
	for i := 1; i <= accounts; i++ {
		if _, err := s.primary.ExecContext(ctx, "INSERT INTO chaos.acct VALUES (?, 1000, ?)", i, fmt.Sprintf("owner-%d", i)); err != nil {
			return err
		}
	}
	return s.probe(ctx, 2*time.Minute)
}

// workload writes transactions that stress ordering: many updates of a few
// hot rows, multi-row transfers, multi-table transactions, and deletes and
// re-inserts of the same key (in one transaction and across two).
type workload struct {
	s         *stack
	rng       *rand.Rand
	committed atomic.Int64
	failed    atomic.Int64 // refused or broken by a fault; the run goes on
}

func (w *workload) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := w.txn(ctx); err != nil {
			w.failed.Add(1)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		w.committed.Add(1)
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func (w *workload) txn(ctx context.Context) error {
	tx, err := w.s.primary.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	hot := 1 + w.rng.IntN(hotRows)
	exec := func(q string, args ...any) error { _, err := tx.ExecContext(ctx, q, args...); return err }
	switch k := w.rng.IntN(100); {
	case k < 40: // hot row update, re-inserted if a delete took it
		err = exec("INSERT INTO chaos.hot VALUES (?, 1, 'new') ON DUPLICATE KEY UPDATE v = v + 1, note = CONCAT('u', v)", hot)
	case k < 50:
		err = exec("DELETE FROM chaos.hot WHERE id = ?", hot)
	case k < 60: // delete and re-insert of one key in one transaction
		if err = exec("DELETE FROM chaos.hot WHERE id = ?", hot); err == nil {
			err = exec("INSERT INTO chaos.hot VALUES (?, 0, 'reborn')", hot)
		}
	case k < 90: // a transfer over several accounts
		n := 2 + w.rng.IntN(4)
		for i := 0; i < n && err == nil; i++ {
			err = exec("UPDATE chaos.acct SET balance = balance + ? WHERE id = ?", w.rng.IntN(21)-10, 1+w.rng.IntN(accounts))
		}
	default: // two tables
		if err = exec("UPDATE chaos.acct SET owner = CONCAT('o', ?) WHERE id = ?", w.rng.IntN(1e6), 1+w.rng.IntN(accounts)); err == nil {
			err = exec("INSERT INTO chaos.hot VALUES (?, 1, 'pair') ON DUPLICATE KEY UPDATE v = v + 1", hot)
		}
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

// standbyApplied reads the standby's applied position as a cache version:
// no cached version may be above it.
func (s *stack) standbyApplied(ctx context.Context) (string, error) {
	cp, err := mysql.Checkpoint(ctx, s.standby, s.cfg.Applier.Name)
	return schemas.FormatVersion(cp.Epoch, cp.Offset), err
}
