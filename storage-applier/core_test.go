package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// fakeConn stands for the standby connection: it records what the applier
// sends and answers as told.
type fakeConn struct {
	sent      []string // "one: q" or "batch: q; q; ..."
	batchErr  error    // every batch fails with it
	errFor    func(q string, args []any) error
	affecting func(q string) int64 // rows a statement changes; 1 if nil
	// commitGate, if set, holds every COMMIT until it receives or closes.
	commitGate chan struct{}
}

type result int64

func (r result) LastInsertId() (int64, error) { return 0, nil }
func (r result) RowsAffected() (int64, error) { return int64(r), nil }

func (f *fakeConn) rows(q string) int64 {
	if f.affecting != nil {
		return f.affecting(q)
	}
	return 1
}

func (f *fakeConn) ExecContext(_ context.Context, q string, args ...any) (sql.Result, error) {
	f.sent = append(f.sent, "one: "+q)
	if q == "COMMIT" && f.commitGate != nil {
		<-f.commitGate
	}
	if f.errFor != nil {
		if err := f.errFor(q, args); err != nil {
			return nil, err
		}
	}
	return result(f.rows(q)), nil
}

func (f *fakeConn) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	return nil, errors.New("no queries here")
}

func (f *fakeConn) PrepareContext(context.Context, string) (*sql.Stmt, error) {
	return nil, errors.New("no queries here")
}

func (f *fakeConn) execBatch(_ context.Context, text string, _ []driver.NamedValue) ([]int64, error) {
	parts := strings.Split(text, ";\n")
	f.sent = append(f.sent, "batch: "+strings.Join(parts, "; "))
	if f.batchErr != nil {
		return nil, f.batchErr
	}
	var n []int64
	for _, p := range parts {
		n = append(n, f.rows(p))
	}
	return n, nil
}

// statements counts what was sent: statements alone and batches.
func (f *fakeConn) statements() (alone, batches int) {
	for _, s := range f.sent {
		if strings.HasPrefix(s, "batch: ") {
			batches++
		} else {
			alone++
		}
	}
	return alone, batches
}

// newTestApplier is an applier on a fake standby, with table d.t known.
func newTestApplier(conn *fakeConn, carefully *careful) (*applier, chan kafka.Item) {
	tables := newStandbyTables(nil, nil)
	t := &standbyTable{has: map[string]bool{}, generated: map[string]bool{}, onUpdate: map[string]bool{}, record: cols}
	for _, c := range cols {
		t.has[c.Name] = true
	}
	tables.known["d.t"] = t
	tables.refs["d.t"] = nil // no foreign key references it
	out := make(chan kafka.Item, 10000)
	rp := &republisher{topic: "s", out: out}
	cp := &checkpoint{name: "c", offset: -1, ddlOffset: -1, rewindEnd: -1}
	cp.applied, _ = mysql.ParseGTIDSet("")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return newApplier(nil, conn, carefully, cp, log, "p", tables, rp, 1000), out
}

// txnRecords are the records of n transactions of rows rows each, inserts
// of ids from 1 on, at offsets from 0.
func txnRecords(n, rows int) []*schemas.Record {
	var out []*schemas.Record
	id := 0
	for txn := 1; txn <= n; txn++ {
		for i := 0; i < rows; i++ {
			id++
			v := fmt.Sprint(id)
			out = append(out, &schemas.Record{SchemaVersion: 1, Op: schemas.OpInsert, Database: "d", Table: "t", Columns: cols,
				After: schemas.Row{"id": &v, "bin": nil, "txt": nil}, Key: schemas.Row{"id": &v},
				Txn: schemas.Txn{GTID: fmt.Sprintf("0-1-%d", txn), Index: i, Last: i == rows-1}})
		}
	}
	return out
}

func applyAll(t *testing.T, a *applier, recs []*schemas.Record) error {
	t.Helper()
	for off, r := range recs {
		if err := a.add(context.Background(), r, wire(t, r, off), false); err != nil {
			return err
		}
	}
	return a.idle(context.Background())
}

// Under a backlog, whole primary transactions share one standby
// transaction, sent in one round trip with the checkpoint, committed once,
// then published.
func TestTransactionsAreGroupedIntoOneStandbyTransaction(t *testing.T) {
	conn := &fakeConn{}
	a, out := newTestApplier(conn, &careful{through: -1})
	if err := applyAll(t, a, txnRecords(3, 2)); err != nil {
		t.Fatal(err)
	}
	if len(conn.sent) != 2 || !strings.HasPrefix(conn.sent[0], "batch: START TRANSACTION; SET SESSION foreign_key_checks = 1, unique_checks = 1; INSERT") ||
		!strings.Contains(conn.sent[0], "UPDATE lockstep.checkpoint") || conn.sent[1] != "one: COMMIT" {
		t.Fatalf("sent %q", conn.sent)
	}
	if strings.Count(conn.sent[0], "INSERT INTO") != 6 {
		t.Fatalf("want the 6 rows in the round trip: %s", conn.sent[0])
	}
	if len(out) != 6 || a.cp.offset != 5 || a.cp.applied.String() != "0-1-3" {
		t.Fatalf("published %d records, checkpoint at %d %s", len(out), a.cp.offset, a.cp.applied)
	}
}

// The next group is read and queued while the standby commits the one
// before; that one is published only once the standby has answered.
func TestTheNextGroupIsReadWhileTheStandbyCommits(t *testing.T) {
	conn := &fakeConn{commitGate: make(chan struct{})}
	a, out := newTestApplier(conn, &careful{through: -1})
	recs := txnRecords(5, 300) // the group ends with the 4th (1,000 rows)
	read := make(chan error, 1)
	go func() {
		for off, r := range recs {
			if err := a.add(context.Background(), r, wire(t, r, off), false); err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the applier waited for the standby's COMMIT before reading the next group")
	}
	if len(out) != 0 || a.cp.offset != -1 {
		t.Fatalf("before the standby answered the COMMIT: %d records published, checkpoint at %d", len(out), a.cp.offset)
	}
	close(conn.commitGate)
	if err := a.idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1500 || a.cp.offset != 1499 || a.cp.applied.String() != "0-1-5" {
		t.Fatalf("published %d records, checkpoint at %d %s", len(out), a.cp.offset, a.cp.applied)
	}
	if commits := strings.Count(strings.Join(conn.sent, "\n"), "one: COMMIT"); commits != 2 {
		t.Fatalf("%d COMMITs, want 2 (one per group): %d round trips", commits, len(conn.sent))
	}
}

// A commit that fails while the next group is read is a failure of both:
// nothing is published, and the applier applies the range again carefully.
func TestAFailedCommitInTheBackgroundIsAppliedAgainCarefully(t *testing.T) {
	carefully := &careful{through: -1}
	conn := &fakeConn{errFor: func(q string, _ []any) error {
		if q == "COMMIT" {
			return errors.New("connection lost")
		}
		return nil
	}}
	a, out := newTestApplier(conn, carefully)
	err := applyAll(t, a, txnRecords(5, 300))
	if err == nil || service.IsPermanent(err) || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("error %v, want a retry naming the failed COMMIT", err)
	}
	if len(out) != 0 || a.cp.offset != -1 || carefully.through < 1199 {
		t.Fatalf("after a failed commit: %d records published, checkpoint at %d, careful through %d", len(out), a.cp.offset, carefully.through)
	}
	if last := conn.sent[len(conn.sent)-1]; last != "one: ROLLBACK" {
		t.Fatalf("the failed transaction was not rolled back: last sent %q", last)
	}
}

// A failed round trip is retried, not a stop, whatever its cause; the next
// life of the applier applies up to the failure one statement per round
// trip and one transaction at a time, commits what precedes the failing
// row and stops there, naming it.
func TestAFailureIsAppliedAgainCarefullyToNameTheRow(t *testing.T) {
	carefully := &careful{through: -1}
	dup := &mysqldriver.MySQLError{Number: 1062, Message: "Duplicate entry '4' for key 'PRIMARY'"}
	conn := &fakeConn{batchErr: dup}
	a, _ := newTestApplier(conn, carefully)
	err := applyAll(t, a, txnRecords(3, 2))
	if err == nil || service.IsPermanent(err) || !strings.Contains(err.Error(), "one statement per round trip") {
		t.Fatalf("first life: %v (permanent %v), want a retry", err, service.IsPermanent(err))
	}
	if !carefully.covers(5) || carefully.covers(6) {
		t.Fatalf("careful through %d, want 5", carefully.through)
	}

	conn = &fakeConn{errFor: func(q string, args []any) error {
		if strings.HasPrefix(q, "INSERT") && args[0] == "4" {
			return dup
		}
		return nil
	}}
	a, out := newTestApplier(conn, carefully)
	err = applyAll(t, a, txnRecords(3, 2))
	if !service.IsPermanent(err) || !strings.Contains(err.Error(), "transaction 0-1-2 row 1") || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("second life: %v", err)
	}
	if _, batches := conn.statements(); batches != 0 {
		t.Fatalf("the careful life sent %d batches: %q", batches, conn.sent)
	}
	if commits := strings.Count(strings.Join(conn.sent, "\n"), "one: COMMIT"); commits != 1 || a.cp.offset != 1 || len(out) != 2 {
		t.Fatalf("%d commits, checkpoint at %d, %d published; want the first transaction alone committed: %q", commits, a.cp.offset, len(out), conn.sent)
	}
}

// An update that matches no row on the standby stops the applier for good:
// the standby diverged.
func TestAnUpdateThatMatchesNoRowStops(t *testing.T) {
	conn := &fakeConn{affecting: func(q string) int64 {
		if strings.HasPrefix(q, "UPDATE `d`") {
			return 0
		}
		return 1
	}}
	a, _ := newTestApplier(conn, &careful{through: 10}) // careful: the error is the row's own
	v, w := "1", "x"
	r := &schemas.Record{SchemaVersion: 1, Op: schemas.OpUpdate, Database: "d", Table: "t", Columns: cols,
		Before: schemas.Row{"id": &v, "bin": nil, "txt": nil}, After: schemas.Row{"id": &v, "bin": nil, "txt": &w}, Key: schemas.Row{"id": &v},
		Txn: schemas.Txn{GTID: "0-1-1", Last: true}}
	err := a.add(context.Background(), r, wire(t, r, 0), false)
	if !service.IsPermanent(err) || !strings.Contains(err.Error(), "0 rows matched on the standby, want 1") || !strings.Contains(err.Error(), "id=1") {
		t.Fatalf("%v", err)
	}
}

// The rows of an aborted Kafka transaction that the broker delivered are
// dropped when the transaction starts over: only the second delivery is
// applied.
func TestATransactionThatStartsOverIsAppliedOnce(t *testing.T) {
	conn := &fakeConn{}
	a, out := newTestApplier(conn, &careful{through: -1})
	recs := txnRecords(1, 3)
	ctx := context.Background()
	for off, r := range recs[:2] { // delivered, then aborted
		if err := a.add(ctx, r, wire(t, r, off), false); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		if err := a.add(ctx, r, wire(t, r, 2+i), i == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.idle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(conn.sent, "\n"), "INSERT INTO"); n != 3 || len(out) != 3 {
		t.Fatalf("%d inserts sent, %d published; want 3: %q", n, len(out), conn.sent)
	}
}

// rowChange is a record of table d.t: op on id, txt as the after value.
func rowChange(op schemas.Op, id, txt, gtid string, index int, last bool) *schemas.Record {
	img := func(txt string) schemas.Row {
		i, x := id, txt
		return schemas.Row{"id": &i, "bin": nil, "txt": &x}
	}
	r := &schemas.Record{SchemaVersion: 1, Op: op, Database: "d", Table: "t", Columns: cols, Key: schemas.Row{"id": &id},
		Txn: schemas.Txn{GTID: gtid, Index: index, Last: last}}
	switch op {
	case schemas.OpInsert:
		r.After = img(txt)
	case schemas.OpDelete:
		r.Before = img("old")
	case schemas.OpUpdate:
		r.Before, r.After = img("old"), img(txt)
	}
	return r
}

// On a table where it is safe, a group's changes go as their net effect:
// one DELETE of the keys the standby must hold before it, one INSERT of
// the rows it leaves; the records are published as they came.
func TestAGroupIsFoldedToItsNetEffect(t *testing.T) {
	recs := []*schemas.Record{
		rowChange(schemas.OpUpdate, "9", "nine", "0-1-1", 0, false), // held before: deleted, inserted
		rowChange(schemas.OpDelete, "8", "", "0-1-1", 1, true),      // held before: deleted
		rowChange(schemas.OpInsert, "1", "a", "0-1-2", 0, false),
		rowChange(schemas.OpInsert, "2", "b", "0-1-2", 1, true),
		rowChange(schemas.OpUpdate, "1", "a2", "0-1-3", 0, false),
		rowChange(schemas.OpDelete, "2", "", "0-1-3", 1, true), // inserted and deleted in the group: nothing
	}
	conn := &fakeConn{affecting: func(q string) int64 {
		switch {
		case strings.HasPrefix(q, "DELETE"):
			return 2
		case strings.HasPrefix(q, "INSERT"):
			return 2
		}
		return 1
	}}
	a, out := newTestApplier(conn, &careful{through: -1})
	a.tables.known["d.t"].foldable = true
	if err := applyAll(t, a, recs); err != nil {
		t.Fatal(err)
	}
	want := "batch: START TRANSACTION; DELETE FROM `d`.`t` WHERE (`id`) IN ((?), (?)); INSERT INTO `d`.`t` (`id`, `bin`, `txt`) VALUES (?, ?, ?), (?, ?, ?); UPDATE lockstep.checkpoint"
	if len(conn.sent) != 2 || !strings.HasPrefix(conn.sent[0], want) {
		t.Fatalf("sent %q\nwant %q...", conn.sent, want)
	}
	if len(out) != 6 || a.cp.offset != 5 {
		t.Fatalf("published %d, checkpoint %d", len(out), a.cp.offset)
	}

	// A key the standby should hold and does not: applied again carefully.
	conn = &fakeConn{affecting: func(q string) int64 {
		if strings.HasPrefix(q, "DELETE") {
			return 1
		}
		return 1
	}}
	carefully := &careful{through: -1}
	a, _ = newTestApplier(conn, carefully)
	a.tables.known["d.t"].foldable = true
	err := applyAll(t, a, recs)
	if err == nil || service.IsPermanent(err) || !strings.Contains(err.Error(), "it holds 1 of them") || carefully.through != 5 {
		t.Fatalf("%v (careful through %d)", err, carefully.through)
	}
	if len(a.fold.tables) != 0 {
		t.Fatal("the fold outlived the failed standby transaction")
	}
}

// A key of several columns is one key for the same values and two for
// values that only read alike run together.
func TestAFoldTellsCompositeKeysApart(t *testing.T) {
	kcols := []schemas.Column{{Name: "a", Type: "varchar", Key: true}, {Name: "b", Type: "varchar", Key: true}, {Name: "v", Type: "int"}}
	tbl := &standbyTable{}
	insert := func(a, b, v string) *schemas.Record {
		img := schemas.Row{"a": sp(a), "b": sp(b), "v": sp(v)}
		return &schemas.Record{SchemaVersion: 1, Op: schemas.OpInsert, Database: "d", Table: "k", Columns: kcols, After: img}
	}
	var f fold
	// ("1", "23") and ("12", "3"): the same text run together, two keys;
	// then the first key again
	for _, r := range []*schemas.Record{insert("1", "23", "1"), insert("12", "3", "2"), insert("1", "23", "3")} {
		if err := f.add(r, tbl); err != nil {
			t.Fatal(err)
		}
	}
	if f.rows != 2 {
		t.Fatalf("%d keys folded, want 2", f.rows)
	}
	st := f.statements()
	if len(st) != 1 || !strings.HasPrefix(st[0].query, "INSERT INTO `d`.`k` (`a`, `b`, `v`) VALUES (?, ?, ?), (?, ?, ?)") {
		t.Fatalf("statements %+v", st)
	}
	if fmt.Sprint(st[0].args) != "[1 23 3 12 3 2]" {
		t.Fatalf("args %v: want each key once, the first with its last value", st[0].args)
	}
}

// A transaction bigger than a fold holds goes out in parts, within the one
// standby transaction: memory does not grow with the transaction.
func TestABigTransactionIsFoldedInParts(t *testing.T) {
	conn := &fakeConn{affecting: func(q string) int64 {
		if strings.HasPrefix(q, "INSERT") {
			return int64(strings.Count(q, "(?, ?, ?)"))
		}
		return 1
	}}
	a, out := newTestApplier(conn, &careful{through: -1})
	a.tables.known["d.t"].foldable = true
	recs := txnRecords(1, 5000)
	if err := applyAll(t, a, recs); err != nil {
		t.Fatal(err)
	}
	sent := strings.Join(conn.sent, "\n")
	if n := strings.Count(sent, "INSERT INTO"); n < 3 {
		t.Fatalf("%d folded inserts for 5,000 rows: the fold held the whole transaction", n)
	}
	if strings.Count(sent, "one: COMMIT") != 1 || strings.Count(sent, "START TRANSACTION") != 1 || len(out) != 5000 {
		t.Fatalf("want one standby transaction and 5,000 records published: %d published", len(out))
	}
}

// The storage-applier's own work per transaction, without a server: a
// sysbench-like backlog (per transaction two updates, a delete and an
// insert of rows with a 120-character text) folded and sent to a
// connection that answers at once, and republished:
//
//	go test -run X -bench Core -benchmem ./storage-applier
func BenchmarkCore(b *testing.B) {
	const txns, table = 1000, 10000
	txt := strings.Repeat("12345678901-", 10)
	row := func(id int) schemas.Row {
		v, x := fmt.Sprint(id), txt
		return schemas.Row{"id": &v, "bin": nil, "txt": &x}
	}
	var recs []*schemas.Record
	var wires []*kgo.Record
	for txn := 1; txn <= txns; txn++ {
		ids := []int{txn * 7 % table, txn * 13 % table, txn * 17 % table, table + txn}
		for i, op := range []schemas.Op{schemas.OpUpdate, schemas.OpUpdate, schemas.OpDelete, schemas.OpInsert} {
			r := &schemas.Record{SchemaVersion: 1, Op: op, Database: "d", Table: "t", Columns: cols,
				Txn: schemas.Txn{GTID: fmt.Sprintf("0-1-%d", txn), Index: i, Last: i == 3}}
			switch op {
			case schemas.OpUpdate:
				r.Before, r.After = row(ids[i]), row(ids[i])
			case schemas.OpDelete:
				r.Before = row(ids[i])
			case schemas.OpInsert:
				r.After = row(ids[i])
			}
			r.Key = schemas.Row{"id": r.Image()["id"]}
			recs = append(recs, r)
			wires = append(wires, wire(b, r, len(wires)))
		}
	}
	ctx := context.Background()
	for _, fold := range []bool{false, true} {
		b.Run(map[bool]string{false: "ordered", true: "folded"}[fold], func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				conn := &fakeConn{affecting: func(q string) int64 { return int64(max(1, strings.Count(q, "(?"))) }}
				a, _ := newTestApplier(conn, &careful{through: -1}) // room for every record it republishes
				a.tables.known["d.t"].foldable = fold
				b.StartTimer()
				for i, r := range recs {
					if err := a.add(ctx, r, wires[i], false); err != nil {
						b.Fatal(err)
					}
				}
				if err := a.idle(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*txns), "µs/txn")
		})
	}
}
