package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// sequencer checks that the primary log holds whole transactions. The rule:
// a transaction's records arrive with indexes 0, 1, 2, ... and end with the
// last-row flag; any other sequence is a broken log, and the applier stops
// rather than apply part of a transaction.
type sequencer struct {
	topic string
	log   *slog.Logger
	gtid  string // the open transaction; "" between transactions
	next  int    // the index its next record must have
}

// place decodes a record and checks its place in the transaction. restart
// reports that the open transaction starts over: its records so far came
// from an aborted Kafka transaction that the broker delivered anyway
// (committed Kafka transactions end only at transaction boundaries; the
// embedded broker does so on some reads), and must be dropped.
func (s *sequencer) place(rec *kgo.Record) (r *schemas.Record, restart bool, err error) {
	r, err = schemas.Decode(rec.Value)
	if err != nil {
		return nil, false, service.Permanentf("record at %s[%d] offset %d: %w; nothing of its transaction was applied", rec.Topic, rec.Partition, rec.Offset, err)
	}
	if s.gtid != "" && r.Txn.Index == 0 && r.Txn.GTID == s.gtid {
		s.log.Warn("transaction starts over: dropping the rows of an aborted Kafka transaction", "gtid", r.Txn.GTID, "dropped_rows", s.next, "at_offset", rec.Offset)
		restart, s.gtid, s.next = true, "", 0
	}
	if r.Txn.Index != s.next || (s.gtid != "" && r.Txn.GTID != s.gtid) {
		open := ""
		if s.gtid != "" {
			open = " of transaction " + s.gtid
		}
		return nil, false, service.Permanentf("record at %s[%d] offset %d is row %d of transaction %s, expected row %d%s: the primary log has an incomplete transaction; nothing of it was applied",
			rec.Topic, rec.Partition, rec.Offset, r.Txn.Index, r.Txn.GTID, s.next, open)
	}
	s.gtid, s.next = r.Txn.GTID, s.next+1
	if r.Txn.Last {
		s.gtid, s.next = "", 0
	}
	return r, restart, nil
}

// applier applies the primary log to the standby record by record: a
// transaction's rows go into one standby transaction as they arrive, which
// commits together with the checkpoint at the last row. Memory does not grow
// with the size of a transaction.
type applier struct {
	db     *sql.DB
	cp     *checkpoint
	log    *slog.Logger
	topic  string
	tables *standbyTables
	// out collects each transaction for the standby log.
	out *outbox

	// the open transaction
	tx   *sql.Tx
	skip bool    // a duplicate: its records are passed over
	next gtidSet // the applied set once it commits
	rows int
}

// add applies one record. It reports whether a transaction has just been
// committed that goes on to the standby log (in a.out).
func (a *applier) add(ctx context.Context, r *schemas.Record, off int64, size int, restart bool) (bool, error) {
	if restart {
		a.rollback()
	}
	if r.Txn.Index == 0 {
		if err := a.begin(ctx, r, off); err != nil {
			return false, err
		}
	}
	if a.skip {
		if !r.Txn.Last {
			return false, nil
		}
		metrics.Transactions.WithLabelValues("duplicate, skipped").Inc()
		return false, a.advanceOnly(ctx, off, a.next)
	}
	a.out.add(r, off, size)
	switch r.Op {
	case schemas.OpPosition: // no rows: the stream starts here
		return true, a.advanceOnly(ctx, off, a.next)
	case schemas.OpDDL:
		return true, a.applyDDL(ctx, r, off, a.next)
	}
	if err := a.applyRow(ctx, r, off); err != nil {
		a.rollback()
		return false, err
	}
	if !r.Txn.Last {
		return false, nil
	}
	if err := a.commit(ctx, r, off); err != nil {
		a.rollback()
		return false, err
	}
	return true, nil
}

// begin opens a transaction at its first record, or marks it to be skipped
// when the standby already holds it.
func (a *applier) begin(ctx context.Context, r *schemas.Record, off int64) error {
	a.skip, a.rows = false, 0
	var err error
	if r.Op == schemas.OpPosition {
		if a.next, err = a.cp.applied.with(r.Source.GTIDSet); err != nil {
			return service.Permanentf("position record at %s offset %d: %w", a.topic, off, err)
		}
		return nil
	}
	if a.next, a.skip, err = a.cp.applied.add(r.Txn.GTID); err != nil {
		return service.Permanentf("transaction at %s offset %d: %w", a.topic, off, err)
	}
	if a.skip {
		a.log.Warn("transaction already applied: a duplicate in the primary log, skipped", "gtid", r.Txn.GTID, "offset", off, "applied", a.cp.applied.String())
		return nil
	}
	if r.Op == schemas.OpDDL {
		return nil
	}
	if a.tx, err = a.db.BeginTx(ctx, nil); err != nil {
		return fmt.Errorf("begin standby transaction for %s: %w", r.Txn.GTID, err)
	}
	return nil
}

// applyRow applies one row change inside the open standby transaction.
func (a *applier) applyRow(ctx context.Context, r *schemas.Record, off int64) error {
	at := func() string {
		return fmt.Sprintf("%s offset %d, transaction %s row %d (%s on %s)", a.topic, off, r.Txn.GTID, r.Txn.Index, r.Op, r.Name())
	}
	t, err := a.tables.check(ctx, r)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing of the transaction was applied", at(), err)
	}
	q, args, err := rowStatement(r, t)
	if err != nil {
		return service.Permanentf("%s: %w; nothing of the transaction was applied", at(), err)
	}
	res, err := a.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return classify(fmt.Errorf("apply %s: %w; nothing of the transaction was applied", at(), err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return service.Permanentf("apply %s, key %v: %d rows matched on the standby, want 1: the standby has diverged from the primary; nothing of the transaction was applied",
			at(), keyText(r), n)
	}
	a.rows++
	return nil
}

// commit commits the open transaction together with the checkpoint.
func (a *applier) commit(ctx context.Context, r *schemas.Record, off int64) error {
	if err := a.cp.advance(ctx, a.tx, off, a.next); err != nil {
		return err
	}
	if err := a.tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction %s at %s offset %d: %w", r.Txn.GTID, a.topic, off, err)
	}
	a.tx = nil
	a.cp.committed(off, a.next)
	metrics.Rows.WithLabelValues("applied").Add(float64(a.rows))
	metrics.Transactions.WithLabelValues("applied").Inc()
	metrics.ObserveLag("applied", r.Source.CommitTimeMS)
	return nil
}

// rollback drops the open standby transaction, if any.
func (a *applier) rollback() {
	if a.tx != nil {
		_ = a.tx.Rollback()
		a.tx = nil
	}
}

// advanceOnly moves the checkpoint past a transaction that changes no row.
func (a *applier) advanceOnly(ctx context.Context, off int64, applied gtidSet) error {
	if err := a.cp.advance(ctx, a.db, off, applied); err != nil {
		return err
	}
	a.cp.committed(off, applied)
	return nil
}

// applyDDL runs a DDL statement. DDL commits on its own, so it cannot share
// the checkpoint's transaction: the checkpoint first marks the statement as
// started; a restart that finds the mark re-runs it and accepts "already
// done" errors, which without the mark would mean a diverged standby.
func (a *applier) applyDDL(ctx context.Context, r *schemas.Record, off int64, next gtidSet) error {
	a.tables.forget()
	res, err := a.db.ExecContext(ctx, sqlMarkDDL, off, a.cp.name, a.cp.offset)
	if err != nil {
		return fmt.Errorf("mark DDL at offset %d: %w", off, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errFenced(a.cp.name, a.cp.offset)
	}
	retried := a.cp.ddlOffset == off
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if r.Schema != "" {
		var n int
		if err := conn.QueryRowContext(ctx, sqlSchemaExists, r.Schema).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			if _, err := conn.ExecContext(ctx, "USE "+mysql.Quote(r.Schema)); err != nil {
				return err
			}
		}
	}
	_, err = conn.ExecContext(ctx, r.Statement)
	if err != nil && retried && alreadyDone(err) {
		a.log.Warn("DDL was already applied before a restart", "gtid", r.Txn.GTID, "offset", off, "statement", r.Statement, "err", err)
		err = nil
	}
	if err != nil {
		return classify(fmt.Errorf("apply DDL of transaction %s at %s offset %d (%s): %w", r.Txn.GTID, a.topic, off, r.Statement, err))
	}
	a.log.Info("applied DDL", "gtid", r.Txn.GTID, "offset", off, "statement", r.Statement)
	return a.advanceOnly(ctx, off, next)
}

// alreadyDone lists the errors a DDL statement gives when it ran before.
func alreadyDone(err error) bool {
	switch mysql.ErrorNumber(err) {
	case 1007, // database exists
		1008, // database doesn't exist
		1050, // table exists
		1051, // unknown table
		1060, // duplicate column
		1061, // duplicate key name
		1091, // can't drop field or key
		1146: // table doesn't exist
		return true
	}
	return false
}

// classify sorts standby errors into stop and retry: errors about the data
// or the schema need an operator; connection and lock errors go away.
func classify(err error) error {
	switch mysql.ErrorNumber(err) {
	case 0, // not a server error: network, context
		1205,       // lock wait timeout
		1213,       // deadlock
		1040,       // too many connections
		1053,       // server shutdown in progress
		2006, 2013: // server gone
		return err
	}
	return service.Permanent(err)
}

func keyText(r *schemas.Record) string {
	var parts []string
	for _, c := range r.KeyColumns() {
		v := "NULL"
		if p := r.Key[c.Name]; p != nil {
			v = *p
		}
		parts = append(parts, c.Name+"="+v)
	}
	return strings.Join(parts, ",")
}
