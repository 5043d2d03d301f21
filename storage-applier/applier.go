package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/sqltext"
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
	r, err = schemas.DecodeShared(rec.Value) // the client never reuses a fetch's bytes
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

// applier applies the primary log to the standby. A transaction's rows go
// into the standby transaction as they arrive; under a backlog, consecutive
// primary transactions share one standby transaction (a group), which
// commits together with the checkpoint of its last one: readers of the
// standby see the primary's transactions whole and in order, a group at a
// time. Statements go several per round trip (standbyTx). Memory does not
// grow with the size of a transaction.
type applier struct {
	db        *sql.DB
	tx        *standbyTx
	carefully *careful
	cp        *checkpoint
	log       *slog.Logger
	topic     string
	tables    *standbyTables
	rp        *republisher
	// groupRows is how many rows a group takes before it commits.
	groupRows int

	// the transaction being read
	cur      *outbox // its records, for the standby log
	inTxn    bool
	skip     bool          // a duplicate: its records are passed over
	next     mysql.GTIDSet // the applied set once it commits
	txnStart int           // where its statements start in tx.queue
	txnSent  int           // tx.sent when it began
	txnOpens bool          // it opens the standby transaction
	txnFolds bool          // some of its rows went into the fold

	// the group: complete transactions not yet committed
	fold    fold // their changes to tables where it is safe, folded
	group   []*outbox
	times   []int64       // their primary commit times, for the lag metric
	applied mysql.GTIDSet // the applied set through its last transaction
	lastOff int64         // the offset of its last record; the checkpoint's once committed
	rows    int
	opened  time.Time // when its standby transaction began

	// committing is the group before, whose commit is on its way to the
	// standby while this one is read; settle finishes it.
	committing *sentGroup

	// lockstep.standby_changes holds the changes the standby made itself
	// up to madeThrough (a primary offset), those up to prunedThrough
	// deleted: published.
	madeThrough, prunedThrough int64
}

func newApplier(db *sql.DB, conn standbyConn, carefully *careful, cp *checkpoint, log *slog.Logger, topic string, tables *standbyTables, rp *republisher, groupRows int) *applier {
	return &applier{db: db, tx: &standbyTx{conn: conn}, carefully: carefully, cp: cp, log: log, topic: topic, tables: tables, rp: rp,
		groupRows: groupRows, next: cp.applied, applied: cp.applied, lastOff: cp.offset, madeThrough: cp.offset, prunedThrough: -1}
}

// careful reports whether this record is in the range where statements go
// one per round trip and transactions commit one at a time.
func (a *applier) careful(off int64) bool { return a.carefully.covers(off) }

// add applies one record. Position and DDL records stand alone: the group
// before them commits first.
func (a *applier) add(ctx context.Context, r *schemas.Record, rec *kgo.Record, restart bool) error {
	return a.failed(rec.Offset, a.addRecord(ctx, r, rec, restart))
}

// idle is called when no more records are at hand: a group at a
// transaction boundary commits now rather than wait for more.
func (a *applier) idle(ctx context.Context) error {
	if a.inTxn {
		return nil
	}
	return a.failed(a.lastOff, a.commitNow(ctx))
}

// failed drops the standby transaction, and the group with it, after err
// at offset off. Outside
// the careful range, the error is one of several statements or
// transactions: the applier starts over from the checkpoint, carefully up
// to off, to apply what precedes the failure and name what fails.
func (a *applier) failed(off int64, err error) error {
	if err == nil {
		return nil
	}
	a.drop()
	if a.careful(off) || errors.Is(err, context.Canceled) {
		return err
	}
	a.carefully.through = off
	return service.Retry(err, fmt.Sprintf("applying again from offset %d one statement per round trip and one transaction at a time, to apply what precedes the failure and name what fails", a.cp.offset+1))
}

func (a *applier) addRecord(ctx context.Context, r *schemas.Record, rec *kgo.Record, restart bool) error {
	off := rec.Offset
	if restart {
		if err := a.restart(ctx, off); err != nil {
			return err
		}
	}
	if r.Txn.Index == 0 {
		if r.Op == schemas.OpPosition || r.Op == schemas.OpDDL {
			if err := a.commitNow(ctx); err != nil {
				return err
			}
		}
		if err := a.begin(r, off); err != nil {
			return err
		}
	}
	if !a.skip {
		a.cur.add(r, rec)
		switch r.Op {
		case schemas.OpPosition: // no rows: the stream starts here
			return a.alone(ctx, off, nil)
		case schemas.OpDDL:
			if !r.Txn.Last {
				// CREATE TABLE ... SELECT: the table, then its rows in the
				// standby transaction. A restart before their commit runs
				// the statement again, which the DDL mark allows.
				return a.applyDDL(ctx, r, off)
			}
			return a.alone(ctx, off, func() error { return a.applyDDL(ctx, r, off) })
		}
		if err := a.applyRow(ctx, r, off); err != nil {
			return err
		}
	}
	if !r.Txn.Last {
		return nil
	}
	a.end(r, off)
	if a.rows >= a.groupRows || a.fold.bytes > 4*batchBytes || a.careful(off) {
		return a.commit(ctx)
	}
	if a.tx.over(1) {
		return a.flush(ctx)
	}
	return nil
}

// begin starts reading a transaction at its first record, or marks it to be
// skipped when the standby already holds it.
func (a *applier) begin(r *schemas.Record, off int64) error {
	a.skip, a.inTxn = false, true
	a.cur = &outbox{}
	a.txnStart, a.txnSent, a.txnOpens, a.txnFolds = len(a.tx.queue), a.tx.sent, !a.tx.open, false
	a.tx.alone = a.careful(off)
	if a.txnOpens {
		a.opened = time.Now()
	}
	var err error
	if r.Txn.Snapshot {
		// Its GTID names the snapshot, not a transaction: the offset alone
		// says whether it is applied. The position record after the
		// snapshot moves the applied set.
		a.next = a.applied
		return nil
	}
	if r.Op == schemas.OpPosition {
		if a.next, err = a.applied.With(r.Source.GTIDSet); err != nil {
			return service.Permanentf("position record at %s offset %d: %w", a.topic, off, err)
		}
		return nil
	}
	if a.next, a.skip, err = a.applied.Add(r.Txn.GTID); err != nil {
		return service.Permanentf("transaction at %s offset %d: %w", a.topic, off, err)
	}
	if a.skip {
		a.log.Warn("transaction already applied: a duplicate in the primary log, skipped", "gtid", r.Txn.GTID, "offset", off, "applied", a.applied.String())
		metrics.Transactions.WithLabelValues("duplicate, skipped").Inc()
	}
	return nil
}

// end adds the transaction just read to the group.
func (a *applier) end(r *schemas.Record, off int64) {
	a.inTxn = false
	a.applied, a.lastOff = a.next, off
	if !a.skip {
		a.group = append(a.group, a.cur)
		a.times = append(a.times, r.Source.CommitTimeMS)
	}
	a.cur = nil
}

// restart drops the rows read so far of the open transaction: they came
// from an aborted Kafka transaction. Rows already sent to the standby can
// only go with the whole standby transaction; if it holds other
// transactions too, the applier starts over from the checkpoint, one
// transaction per standby transaction up to here.
func (a *applier) restart(ctx context.Context, off int64) error {
	if err := a.settle(ctx); err != nil {
		return err
	}
	a.inTxn, a.cur = false, nil
	a.next = a.applied
	if a.tx.sent == a.txnSent && !a.txnOpens && !a.txnFolds {
		clear(a.tx.queue[a.txnStart:])
		a.tx.queue, a.tx.checks = a.tx.queue[:a.txnStart], nil // a SET may be among the dropped
		return nil
	}
	a.drop()
	if a.lastOff == a.cp.offset {
		return nil // the standby transaction held nothing else
	}
	return fmt.Errorf("the rows of an aborted Kafka transaction at offset %d were sent to the standby in a transaction shared with whole ones", off)
}

// drop rolls back the standby transaction and forgets the group's fold. A
// commit on its way is not finished: if the standby took it, the next
// life publishes it, as after a crash.
func (a *applier) drop() {
	a.tx.rollback()
	a.fold, a.committing = fold{}, nil
}

// flush sends the statements queued in the standby transaction, once the
// commit before them is finished.
func (a *applier) flush(ctx context.Context) error {
	if err := a.settle(ctx); err != nil {
		return err
	}
	return a.tx.flush(ctx)
}

// applyRow queues one row change in the standby transaction, or folds it.
func (a *applier) applyRow(ctx context.Context, r *schemas.Record, off int64) error {
	at := func() string {
		return fmt.Sprintf("%s offset %d, transaction %s row %d (%s on %s)", a.topic, off, r.Txn.GTID, r.Txn.Index, r.Op, r.Name())
	}
	t, err := a.tables.check(ctx, r)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing of the transaction was applied", at(), err)
	}
	if t.foldable && !a.careful(off) {
		if err := a.fold.add(r, t); err != nil {
			return service.Permanentf("%s: %w; nothing of the transaction was applied", at(), err)
		}
		a.tx.start()
		a.txnFolds = true
		a.rows++
		if a.fold.rows < 4*batchStmts && a.fold.bytes < 4*batchBytes {
			return nil
		}
		// A big transaction: what is folded so far goes now, so that
		// memory does not grow with it; the keys start a new fold.
		a.pushFold()
		return a.flush(ctx)
	}
	q, args, err := rowStatement(r, t)
	if err != nil {
		return service.Permanentf("%s: %w; nothing of the transaction was applied", at(), err)
	}
	// A snapshot's tables arrive in any order: their rows go in without
	// foreign key checks.
	fkChecks := !r.NoForeignKeyChecks && r.Op != schemas.OpSnapshot
	a.tx.set(checks{foreignKeys: fkChecks, unique: !r.NoUniqueChecks, constraints: !r.NoCheckConstraints})
	var cs []*cascaded
	if fkChecks {
		if cs, err = a.cascades(ctx, r, at); err != nil {
			return err
		}
	}
	a.tx.add(stmt{query: q, args: args, check: func(n int64, err error) error {
		if err != nil {
			return mysql.Classify(fmt.Errorf("apply %s: %w; nothing of the transaction was applied", at(), err))
		}
		if n != 1 {
			return service.Permanentf("apply %s, key %v: %d rows matched on the standby, want 1: the standby has diverged from the primary; nothing of the transaction was applied",
				at(), keyText(r), n)
		}
		return nil
	}})
	a.rows++
	if len(cs) > 0 {
		if err := a.cascaded(ctx, r, off, cs, at); err != nil {
			return err
		}
	}
	if a.careful(off) || a.tx.over(4) {
		return a.flush(ctx) // one statement at a time, or a big transaction
	}
	return nil
}

// sentGroup is a group on its way to the standby log: sent to the standby
// with its checkpoint, then answered.
type sentGroup struct {
	group   []*outbox
	times   []int64
	rows    int
	lastOff int64
	applied mysql.GTIDSet
	// rowsOpened: its rows were in a standby transaction opened then, and
	// the changes the standby made were pruned up to pruned with it.
	rowsOpened time.Time
	pruned     int64
}

// commit commits the group together with the checkpoint, then hands its
// transactions to the standby log. Outside the careful range it sends the
// commit and returns: the next group is read while the standby works, and
// settle finishes this one.
func (a *applier) commit(ctx context.Context) error {
	if err := a.settle(ctx); err != nil {
		return err
	}
	if a.lastOff == a.cp.offset {
		return nil // nothing read since the last commit
	}
	c := &sentGroup{group: a.group, times: a.times, rows: a.rows, lastOff: a.lastOff, applied: a.applied, pruned: a.prunedThrough}
	a.group, a.times, a.rows = nil, nil, 0
	if !a.tx.open {
		if err := a.advanceOnly(ctx, c.lastOff, c.applied); err != nil {
			return err // only duplicates: no rows to commit
		}
		return a.finish(ctx, c)
	}
	a.pushFold()
	if pub := a.rp.published.Load(); a.madeThrough > c.pruned && pub > c.pruned {
		c.pruned = min(pub, a.madeThrough)
		a.tx.push(stmt{query: sqlPruneChanges, args: []any{a.cp.name, c.pruned, int64(math.MaxInt64)}, check: anyRows})
	}
	a.tx.push(stmt{query: sqlAdvanceCheckpoint, args: []any{c.lastOff, c.applied.String(), a.cp.name, a.cp.offset},
		check: a.cp.checkAdvance})
	c.rowsOpened = a.opened
	a.tx.commit(ctx)
	a.committing = c
	if a.careful(c.lastOff) {
		return a.settle(ctx) // one transaction at a time
	}
	return nil
}

// pushFold queues the folded changes' statements.
func (a *applier) pushFold() {
	for _, st := range a.fold.statements() {
		a.tx.push(st)
	}
}

// commitNow commits the group and waits for the standby's answer.
func (a *applier) commitNow(ctx context.Context) error {
	if err := a.commit(ctx); err != nil {
		return err
	}
	return a.settle(ctx)
}

// settle waits for the commit on its way, if any, and finishes it.
func (a *applier) settle(ctx context.Context) error {
	c := a.committing
	if c == nil {
		return nil
	}
	a.committing = nil
	if err := a.tx.wait(); err != nil {
		return c.failed(a.topic, err)
	}
	return a.finish(ctx, c)
}

func (c *sentGroup) failed(topic string, err error) error {
	return fmt.Errorf("commit transactions through %s at %s offset %d: %w", c.applied, topic, c.lastOff, err)
}

// finish records a group the standby committed and hands its transactions
// to the standby log.
func (a *applier) finish(ctx context.Context, c *sentGroup) error {
	if !c.rowsOpened.IsZero() {
		a.prunedThrough = c.pruned
		metrics.Apply.WithLabelValues("applied").Observe(time.Since(c.rowsOpened).Seconds())
	}
	a.cp.committed(c.lastOff, c.applied)
	metrics.Rows.WithLabelValues("applied").Add(float64(c.rows))
	metrics.Transactions.WithLabelValues("applied").Add(float64(len(c.group)))
	for _, t := range c.times {
		metrics.ObserveLag("applied", t)
	}
	// Passed once per transaction committed, so that a test aims at the
	// n-th transaction whatever the grouping.
	for range c.group {
		crashpoint.Hit(crashpoint.ApplierCommitted)
	}
	now := time.Now()
	for _, o := range c.group {
		if err := a.rp.publish(ctx, o, now); err != nil {
			return err
		}
	}
	return nil
}

// alone handles a position or DDL record, a transaction of its own that
// does not go through the standby transaction: apply (nil: nothing to
// apply), move the checkpoint, hand it to the standby log.
func (a *applier) alone(ctx context.Context, off int64, apply func() error) error {
	if err := a.settle(ctx); err != nil {
		return err
	}
	o := a.cur
	a.inTxn, a.cur = false, nil
	a.applied, a.lastOff = a.next, off
	if apply != nil {
		if err := apply(); err != nil {
			return err
		}
	}
	if err := a.advanceOnly(ctx, off, a.applied); err != nil {
		return err
	}
	a.cp.committed(off, a.applied)
	return a.rp.publish(ctx, o, time.Now())
}

// advanceOnly moves the checkpoint past transactions that change no row.
func (a *applier) advanceOnly(ctx context.Context, off int64, applied mysql.GTIDSet) error {
	return a.cp.advance(ctx, a.db, off, applied)
}

// applyDDL runs a DDL statement. DDL commits on its own, so it cannot share
// the checkpoint's transaction: the checkpoint first marks the statement as
// started; a restart that finds the mark re-runs it and accepts "already
// done" errors, which without the mark would mean a diverged standby.
func (a *applier) applyDDL(ctx context.Context, r *schemas.Record, off int64) error {
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
	q := r.Statement
	if guarded, ok := sqltext.InertTrigger(q); ok {
		q = guarded
	}
	_, err = conn.ExecContext(ctx, q)
	if err != nil && retried && alreadyDone(err) {
		a.log.Warn("DDL was already applied before a restart", "gtid", r.Txn.GTID, "offset", off, "statement", r.Statement, "err", err)
		err = nil
	}
	if err == nil {
		if d, perr := sqltext.ParseDDL(r.Statement); perr == nil && d.Kind == "EVENT" {
			err = quietEvents(ctx, conn, r.Database)
		}
	}
	if err != nil {
		return mysql.Classify(fmt.Errorf("apply DDL of transaction %s at %s offset %d (%s): %w", r.Txn.GTID, a.topic, off, r.Statement, err))
	}
	a.log.Info("applied DDL", "gtid", r.Txn.GTID, "offset", off, "statement", r.Statement)
	return nil
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
