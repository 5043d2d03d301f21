package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// lock makes one storage-applier the active one and any other a hot spare.
// It is a named lock in the standby database, held by a connection of its
// own: when the holder dies its connection goes, the lock is free, and a
// spare takes it within a second. The conditional checkpoint update fences
// the rest (an applier whose lock connection broke but who still runs).
type lock struct {
	conn *sql.Conn
	name string
}

const lockPoll = time.Second

// acquire waits until this process holds the lock; nil, nil when ctx ends first.
func acquire(ctx context.Context, db *sql.DB, applier string, log *slog.Logger) (*lock, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the lock connection: %w", err)
	}
	l := &lock{conn: conn, name: mysql.ApplierLock(applier)}
	waiting := false
	for {
		got, err := mysql.TryLock(ctx, conn, l.name)
		if err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		}
		if got {
			if waiting {
				log.Info("took over as the active storage-applier", "lock", l.name)
			}
			return l, nil
		}
		if !waiting {
			log.Info("another storage-applier is active; standing by as hot spare", "lock", l.name)
			waiting = true
		}
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, nil
		case <-time.After(lockPoll):
		}
	}
}

// watch returns an error as soon as this process no longer holds the lock.
func (l *lock) watch(ctx context.Context) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var held sql.NullBool
		err := l.conn.QueryRowContext(ctx, sqlLockHolder, l.name).Scan(&held)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || !held.Bool {
			return fmt.Errorf("lost lock %s on the standby (err: %v): stepping down", l.name, err)
		}
	}
}

func (l *lock) release() { l.conn.Close() }
