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

// txn is one whole primary transaction read from the primary log.
type txn struct {
	records []*schemas.Record
	offsets []int64
}

func (t *txn) last() int64  { return t.offsets[len(t.offsets)-1] }
func (t *txn) gtid() string { return t.records[0].Txn.GTID }
func (t *txn) first() int64 { return t.offsets[0] }

// assembler groups primary-log records into whole transactions. The rule:
// a transaction's records arrive with indexes 0, 1, 2, ... and end with the
// last-row flag; any other sequence is a broken log, and the applier stops
// rather than apply part of a transaction.
type assembler struct {
	topic string
	log   *slog.Logger
	cur   *txn
}

func (a *assembler) add(rec *kgo.Record) (*txn, error) {
	r, err := schemas.Decode(rec.Value)
	if err != nil {
		return nil, service.Permanentf("record at %s[%d] offset %d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	want := 0
	if a.cur != nil {
		want = len(a.cur.records)
		// The one exception: the same transaction starting over. Committed
		// Kafka transactions end only at transaction boundaries, so the
		// partial rows came from an aborted one that the broker delivered
		// anyway (the embedded broker does so on some reads); drop them.
		if r.Txn.Index == 0 && r.Txn.GTID == a.cur.gtid() {
			a.log.Warn("transaction starts over: dropping the rows of an aborted Kafka transaction", "gtid", r.Txn.GTID, "dropped_rows", want, "at_offset", rec.Offset)
			a.cur, want = nil, 0
		}
	}
	if r.Txn.Index != want || (a.cur != nil && r.Txn.GTID != a.cur.gtid()) {
		return nil, service.Permanentf("record at %s[%d] offset %d is row %d of transaction %s, expected row %d%s: the primary log has an incomplete transaction; nothing of it was applied",
			rec.Topic, rec.Partition, rec.Offset, r.Txn.Index, r.Txn.GTID, want, a.curDesc())
	}
	if a.cur == nil {
		a.cur = &txn{}
	}
	a.cur.records = append(a.cur.records, r)
	a.cur.offsets = append(a.cur.offsets, rec.Offset)
	if !r.Txn.Last {
		return nil, nil
	}
	t := a.cur
	a.cur = nil
	return t, nil
}

func (a *assembler) curDesc() string {
	if a.cur == nil {
		return ""
	}
	return " of transaction " + a.cur.gtid()
}

// applier applies whole transactions to the standby, each in one database
// transaction together with the checkpoint.
type applier struct {
	db  *sql.DB
	cp  *checkpoint
	log *slog.Logger
}

// apply applies a transaction, or skips it when the standby already holds
// it; it reports whether the transaction goes on to the standby log.
func (a *applier) apply(ctx context.Context, t *txn) (bool, error) {
	r0 := t.records[0]
	if r0.Op == schemas.OpPosition {
		// no rows: the stream starts here, nothing before it is expected
		next, err := a.cp.applied.with(r0.Source.GTIDSet)
		if err != nil {
			return false, service.Permanentf("position record at offset %d: %w", t.first(), err)
		}
		return true, a.advanceOnly(ctx, t, next)
	}
	next, dup, err := a.cp.applied.add(t.gtid())
	if err != nil {
		return false, service.Permanentf("transaction at offset %d: %w", t.first(), err)
	}
	if dup {
		a.log.Warn("transaction already applied: a duplicate in the primary log, skipped", "gtid", t.gtid(), "offset", t.first(), "applied", a.cp.applied.String())
		metrics.Transactions.WithLabelValues("duplicate, skipped").Inc()
		return false, a.advanceOnly(ctx, t, next)
	}
	if r0.Op == schemas.OpDDL {
		return true, a.applyDDL(ctx, t, next)
	}
	return true, a.applyRows(ctx, t, next)
}

// advanceOnly moves the checkpoint past a transaction that changes no row.
func (a *applier) advanceOnly(ctx context.Context, t *txn, applied gtidSet) error {
	if err := a.cp.advance(ctx, a.db, t.last(), applied); err != nil {
		return err
	}
	a.cp.committed(t.last(), applied)
	return nil
}

func (a *applier) applyRows(ctx context.Context, t *txn, next gtidSet) error {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin standby transaction for %s: %w", t.gtid(), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for i, r := range t.records {
		q, args, err := rowStatement(r)
		if err != nil {
			return service.Permanentf("transaction %s row %d at offset %d: %w", t.gtid(), i, t.offsets[i], err)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return classify(fmt.Errorf("apply transaction %s row %d (%s on %s) at offset %d: %w", t.gtid(), i, r.Op, r.Name(), t.offsets[i], err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return service.Permanentf("apply transaction %s row %d (%s on %s, key %v) at offset %d: %d rows matched on the standby, want 1: the standby has diverged from the primary",
				t.gtid(), i, r.Op, r.Name(), keyText(r), t.offsets[i], n)
		}
	}
	if err := a.cp.advance(ctx, tx, t.last(), next); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction %s at offset %d: %w", t.gtid(), t.last(), err)
	}
	a.cp.committed(t.last(), next)
	metrics.Rows.WithLabelValues("applied").Add(float64(len(t.records)))
	metrics.Transactions.WithLabelValues("applied").Inc()
	metrics.ObserveLag("applied", t.records[0].Source.CommitTimeMS)
	return nil
}

// applyDDL runs a DDL statement. DDL commits on its own, so it cannot share
// the checkpoint's transaction: the checkpoint first marks the statement as
// started; a restart that finds the mark re-runs it and accepts "already
// done" errors, which without the mark would mean a diverged standby.
func (a *applier) applyDDL(ctx context.Context, t *txn, next gtidSet) error {
	r, off := t.records[0], t.first()
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
		a.log.Warn("DDL was already applied before a restart", "gtid", t.gtid(), "offset", off, "statement", r.Statement, "err", err)
		err = nil
	}
	if err != nil {
		return classify(fmt.Errorf("apply DDL of transaction %s at offset %d (%s): %w", t.gtid(), off, r.Statement, err))
	}
	a.log.Info("applied DDL", "gtid", t.gtid(), "offset", off, "statement", r.Statement)
	return a.advanceOnly(ctx, t, next)
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
