package kafka

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

func broker(t *testing.T) []kgo.Opt {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts, err := Options(config.Kafka{Brokers: c.ListenAddrs(), MaxMessageBytes: 1 << 20, ClientID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// transactional is a transactional client (id) of a new broker, with the
// test's context and the options for more clients.
func transactional(t *testing.T, id string) (context.Context, []kgo.Opt, *kgo.Client, *kadm.Client) {
	t.Helper()
	opts := broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(append(opts, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return ctx, opts, cl, kadm.NewClient(cl)
}

func record(gtid string, index int, last bool) *schemas.Record {
	id := fmt.Sprint(index)
	return &schemas.Record{Op: schemas.OpInsert, Database: "d", Table: "t", Columns: []schemas.Column{{Name: "id", Type: "int", Key: true}},
		After: schemas.Row{"id": &id}, Txn: schemas.Txn{GTID: gtid, Index: index, Last: last}}
}

// A writer's aborted batch is invisible, and LastCommitted finds the last
// record of the last committed batch behind the commit markers.
func TestTxnWriterAndLastCommitted(t *testing.T) {
	ctx, opts, cl, adm := transactional(t, "w")
	start := time.Now()
	if _, err := EnsureTopic(ctx, adm, "log", 1, 1<<20); err != nil {
		t.Fatal(err)
	}
	b, err := PartitionBounds(ctx, adm, "log")
	if err != nil {
		t.Fatal(err)
	}
	if last, err := LastCommitted(ctx, opts, "log", 0, b[0]); err != nil || last != nil {
		t.Fatalf("empty topic: last = %v, err = %v", last, err)
	}
	t.Logf("create and read an empty topic: %s", time.Since(start))

	in := make(chan Item, 100)
	w := &TxnWriter{Client: cl, BatchRows: 3, Linger: time.Hour, Log: slog.Default()}
	for i := range 10 { // ten transactions of two records
		for j := range 2 {
			it, err := NewItem("log", 0, record(fmt.Sprintf("0-1-%d", i+1), j, j == 1))
			if err != nil {
				t.Fatal(err)
			}
			in <- it
		}
	}
	close(in)
	if err := w.Run(ctx, in); err != nil {
		t.Fatal(err)
	}
	// An aborted transaction at the end must not count.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	it, _ := NewItem("log", 0, record("0-1-99", 0, false))
	if err := cl.ProduceSync(ctx, it.Rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	if b, err = PartitionBounds(ctx, adm, "log"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	last, err := LastCommitted(ctx, opts, "log", 0, b[0])
	if err != nil || last == nil {
		t.Fatalf("last committed: %v, %v", last, err)
	}
	t.Logf("LastCommitted: %s", time.Since(start))
	r, err := schemas.Decode(last.Value)
	if err != nil {
		t.Fatal(err)
	}
	if r.Txn.GTID != "0-1-10" || !r.Txn.Last {
		t.Fatalf("last committed record is %+v, want the last row of 0-1-10", r.Txn)
	}
	var n int
	if err := Scan(ctx, opts, "log", 0, b[0].Start, b[0].End, func(*kgo.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("scan saw %d committed records, want 20", n)
	}
}

// A record over kafka.max_message_bytes, or over a topic's smaller limit,
// stops the writer with a permanent error that says what to raise; nothing
// of its transaction becomes visible.
func TestTxnWriterRefusesRecordsOverTheLimit(t *testing.T) {
	ctx, opts, cl, adm := transactional(t, "big")
	// the topic accepts 100 KiB, lockstep is told 1 MiB
	if _, err := EnsureTopic(ctx, adm, "small", 1, 100<<10); err != nil {
		t.Fatal(err)
	}
	big := func(size int) Item {
		r := record("0-1-1", 0, true)
		random := make([]byte, size*3/4) // incompressible: the broker sees it whole
		if _, err := rand.Read(random); err != nil {
			t.Fatal(err)
		}
		v := base64.StdEncoding.EncodeToString(random)
		r.After["id"] = &v
		it, err := NewItem("small", 0, r)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	for _, c := range []struct {
		name string
		size int
	}{{"over max_message_bytes", 2 << 20}, {"over the topic's max.message.bytes", 200 << 10}} {
		in := make(chan Item, 1)
		in <- big(c.size)
		close(in)
		w := &TxnWriter{Client: cl, BatchRows: 10, Linger: time.Second, Log: slog.Default(), MaxBytes: 1 << 20}
		err := w.Run(ctx, in)
		if err == nil || !service.IsPermanent(err) || !strings.Contains(err.Error(), "raise kafka.max_message_bytes") || !strings.Contains(err.Error(), "d.t on small (insert, transaction 0-1-1)") {
			t.Errorf("%s: error %v, want a permanent error naming the record and what to raise", c.name, err)
		}
	}
	b, err := PartitionBounds(ctx, adm, "small")
	if err != nil {
		t.Fatal(err)
	}
	if last, err := LastCommitted(ctx, opts, "small", 0, b[0]); err != nil || last != nil {
		t.Fatalf("a refused record became visible (err %v)", err)
	}
}

// Between database transactions a Kafka transaction waits up to Linger for
// more: transactions that arrive apart within it share one Kafka
// transaction; one that arrives after it starts the next.
func TestTxnWriterLingersForMoreTransactions(t *testing.T) {
	ctx, _, cl, adm := transactional(t, "w")
	if _, err := EnsureTopic(ctx, adm, "log", 1, 1<<20); err != nil {
		t.Fatal(err)
	}
	commits := make(chan int64, 10)
	w := &TxnWriter{Client: cl, BatchRows: 1000, Linger: 500 * time.Millisecond, Log: slog.Default(),
		Committed: func(mark int64) { commits <- mark }}
	in := make(chan Item)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	send := func(seq int) {
		it, err := NewItem("log", 0, record(fmt.Sprintf("0-1-%d", seq), 0, true))
		if err != nil {
			t.Fatal(err)
		}
		it.Mark = int64(seq)
		in <- it
	}
	send(1)
	time.Sleep(100 * time.Millisecond) // the second arrives apart, within the linger
	send(2)
	// The linger passes with nothing more: the first Kafka transaction ends
	// with both, and the third starts the next.
	select {
	case mark := <-commits:
		if mark != 2 {
			t.Fatalf("the first Kafka transaction ended after mark %d, want 2", mark)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first Kafka transaction did not end within 10 s of a 500 ms linger")
	}
	send(3)
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if mark := <-commits; mark != 3 || len(commits) != 0 {
		t.Fatalf("the second Kafka transaction ended after mark %d (and %d more ended), want 3 alone", mark, len(commits))
	}
}

// What is queued already goes into the open Kafka transaction past Linger,
// up to BatchRows: a backlog fills whole transactions (across a WAN, each
// commit costs round trips).
func TestTxnWriterFillsTransactionsFromTheQueue(t *testing.T) {
	ctx, _, cl, adm := transactional(t, "w")
	if _, err := EnsureTopic(ctx, adm, "log", 1, 1<<20); err != nil {
		t.Fatal(err)
	}
	var commits []int64
	w := &TxnWriter{Client: cl, BatchRows: 100, Linger: time.Nanosecond, Log: slog.Default(),
		Committed: func(mark int64) { commits = append(commits, mark) }}
	in := Queue(w.BatchRows)
	for seq := 1; seq <= 250; seq++ {
		it, err := NewItem("log", 0, record(fmt.Sprintf("0-1-%d", seq), 0, true))
		if err != nil {
			t.Fatal(err)
		}
		it.Mark = int64(seq)
		in <- it
	}
	close(in)
	if err := w.Run(ctx, in); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(commits) != "[100 200 250]" {
		t.Fatalf("Kafka transactions ended after marks %v, want [100 200 250]", commits)
	}
}
