package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	mysqldriver "github.com/go-sql-driver/mysql"
)

// stmt is one statement of the standby transaction. check judges its
// outcome: the rows it changed, or the server's error for it.
type stmt struct {
	query string
	args  []any
	check func(rows int64, err error) error
}

// anyRows accepts whatever a statement changed and passes its error on.
func anyRows(_ int64, err error) error { return err }

// standbyConn is what the applier needs of its standby connection: the
// seam the applier's unit tests fake (see applier_test.go).
type standbyConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	// execBatch sends statements in one round trip and returns the rows
	// each changed; driver.ErrSkip when nothing was sent.
	execBatch(ctx context.Context, text string, args []driver.NamedValue) ([]int64, error)
}

// sqlConn is a standby connection of database/sql.
type sqlConn struct{ *sql.Conn }

func (c sqlConn) execBatch(ctx context.Context, text string, args []driver.NamedValue) ([]int64, error) {
	var affected []int64
	err := c.Raw(func(dc any) error {
		res, err := dc.(driver.ExecerContext).ExecContext(ctx, text, args)
		if err == nil {
			affected = res.(mysqldriver.Result).AllRowsAffected()
		}
		return err
	})
	return affected, err
}

// standbyTx is the applier's transaction on its own standby connection. The
// statements are queued and sent several per round trip, as one
// multi-statement text (the driver escapes the values, as for any
// statement), and the server reports the rows each one changed, so every
// statement is still checked on its own. Round trips, not the standby's
// work, are what bound an applier that sends one statement at a time.
type standbyTx struct {
	conn  standbyConn
	open  bool // START TRANSACTION is sent or queued
	queue []stmt
	bytes int
	// sent counts the statements of the open transaction already sent.
	sent int
	// alone sends every statement in a round trip of its own, so that the
	// server's error is the failing statement's and passes its check.
	alone bool
	// checks are the session's settings as last queued; unknown (nil) at
	// first and after a rollback.
	checks *checks
	// constraintsOff: check_constraint_checks was turned off once in this
	// session (MariaDB only: only then is it named again).
	constraintsOff bool
	// inflight answers a commit sent in the background (commit) once
	// the standby has answered it; nil when none is on its way. The
	// connection is the background's until wait collects the answer.
	inflight chan error
}

// checks are the session settings a row is applied with: those of the
// primary's session that wrote it.
type checks struct{ foreignKeys, unique, constraints bool }

// set queues the statement that gives the session these checks, unless it
// has them already.
func (t *standbyTx) set(c checks) {
	if t.checks != nil && *t.checks == c {
		return
	}
	t.checks = &c
	q := fmt.Sprintf("SET SESSION foreign_key_checks = %d, unique_checks = %d", b2i(c.foreignKeys), b2i(c.unique))
	if !c.constraints || t.constraintsOff {
		t.constraintsOff = true
		q += fmt.Sprintf(", check_constraint_checks = %d", b2i(c.constraints))
	}
	t.add(stmt{query: q, check: anyRows})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// start opens the transaction now if it is not open.
func (t *standbyTx) start() {
	if !t.open {
		t.open = true
		t.push(stmt{query: "START TRANSACTION", check: anyRows})
	}
}

// Limits of one round trip: far below any max_allowed_packet.
const (
	batchStmts = 500
	batchBytes = 1 << 20
)

// add queues a statement, opening the transaction first if needed.
func (t *standbyTx) add(s stmt) {
	t.start()
	t.push(s)
}

func (t *standbyTx) push(s stmt) {
	t.queue = append(t.queue, s)
	t.bytes += len(s.query)
	for _, a := range s.args {
		switch v := a.(type) {
		case string:
			t.bytes += 2 * len(v) // escaping can double it
		case []byte:
			t.bytes += 2 * len(v)
		}
	}
}

// over reports whether the queue holds more than n round trips' worth:
// at a transaction boundary it is sent at 1, inside a transaction at 4.
func (t *standbyTx) over(n int) bool { return len(t.queue) >= n*batchStmts || t.bytes >= n*batchBytes }

// flush sends the queued statements: one alone (or each alone) as a plain
// statement, more in one round trip.
func (t *standbyTx) flush(ctx context.Context) error {
	if err := t.wait(); err != nil {
		return err
	}
	q := t.queue
	t.queue, t.bytes = t.queue[:0], 0
	t.sent += len(q)
	return t.send(ctx, q, t.alone)
}

// send sends statements q and checks each one's outcome.
func (t *standbyTx) send(ctx context.Context, q []stmt, alone bool) error {
	if len(q) == 1 || alone {
		for _, s := range q {
			if err := t.execOne(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	var text strings.Builder
	var args []driver.NamedValue
	for i, s := range q {
		if i > 0 {
			text.WriteString(";\n")
		}
		text.WriteString(s.query)
		for _, a := range s.args {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: a})
		}
	}
	affected, err := t.conn.execBatch(ctx, text.String(), args)
	if errors.Is(err, driver.ErrSkip) {
		// The driver would not inline these values (too big for one
		// packet): nothing was sent; send them one by one.
		for _, s := range q {
			if err := t.execOne(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		// The server stopped at the failing statement without saying which
		// it was; the applier finds it by re-applying one at a time.
		return fmt.Errorf("a round trip of %d statements failed on the standby: %w", len(q), err)
	}
	if len(affected) != len(q) {
		return fmt.Errorf("the standby answered %d results to %d statements", len(affected), len(q))
	}
	for i, s := range q {
		if err := s.check(affected[i], nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *standbyTx) execOne(ctx context.Context, s stmt) error {
	res, err := t.conn.ExecContext(ctx, s.query, s.args...)
	if err != nil {
		return s.check(0, err)
	}
	n, err := res.RowsAffected()
	return s.check(n, err)
}

// commit sends what is queued, then, once every statement passed its
// check, COMMIT, in the background: the caller goes on queueing the next
// transaction's statements while the standby works, and collects the
// outcome with wait before it sends anything else. A commit on its way
// must be collected first.
func (t *standbyTx) commit(ctx context.Context) {
	// The queue goes with the background; a new one starts here.
	q, alone := t.queue, t.alone
	t.queue, t.bytes, t.open, t.sent = nil, 0, false, 0
	done := make(chan error, 1)
	t.inflight = done
	go func() {
		err := t.send(ctx, q, alone)
		if err == nil {
			_, err = t.conn.ExecContext(ctx, "COMMIT")
		}
		done <- err
	}()
}

// wait collects the outcome of the commit on its way, if any. A failed one
// is rolled back with what was queued since.
func (t *standbyTx) wait() error {
	if t.inflight == nil {
		return nil
	}
	err := <-t.inflight
	t.inflight = nil
	if err != nil {
		t.open = true // its statements may have left the server's transaction open
		t.rollback()
	}
	return err
}

// rollback drops the queue and the open transaction, if any.
func (t *standbyTx) rollback() {
	if t.inflight != nil {
		<-t.inflight // the outcome no longer matters: the connection does
		t.inflight = nil
		t.open = true
	}
	if t.open {
		_, _ = t.conn.ExecContext(context.Background(), "ROLLBACK")
	}
	clear(t.queue)
	t.queue, t.bytes, t.open, t.sent, t.checks = t.queue[:0], 0, false, 0, nil
}

// careful is the range of the primary log in which the applier sends one
// statement per round trip and commits every transaction on its own: up to
// the offset of the last failure, so that the applier's next life commits
// the transactions that shared the failed standby transaction and stops,
// if the failure is for good, at exactly the row that fails. It outlives
// the applier's lives (main keeps it across the stage's restarts).
type careful struct{ through int64 }

// covers reports whether offset off is in the careful range.
func (c *careful) covers(off int64) bool { return off <= c.through }
