package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Item is one record to publish; Last marks the final record of a database
// transaction, the only place a Kafka transaction may end.
type Item struct {
	Rec  *kgo.Record
	Last bool
	// Mark is the writer's own note on the item, handed to
	// TxnWriter.Committed once the item's Kafka transaction committed.
	Mark int64
}

// NewItem encodes a lockstep record for a topic. The headers repeat the
// transaction id, op and table for tools that do not decode the body.
func NewItem(topic string, partition int32, r *schemas.Record) (Item, error) {
	v, err := schemas.Encode(r)
	if err != nil {
		return Item{}, fmt.Errorf("encode record %d of transaction %s: %w", r.Txn.Index, r.Txn.GTID, err)
	}
	return Item{Last: r.Txn.Last, Rec: &kgo.Record{
		Topic:     topic,
		Partition: partition,
		Key:       r.KafkaKey(),
		Value:     v,
		Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderGTID, Value: []byte(r.Txn.GTID)},
			{Key: schemas.HeaderOp, Value: []byte(r.Op)},
			{Key: schemas.HeaderTable, Value: []byte(r.Name())},
		},
	}}, nil
}

// Queue is the channel a TxnWriter reads from: it holds a whole Kafka
// transaction (batchRows records) while the one before commits, so that
// the next one is full. Across a WAN a commit takes two round trips, and
// what queues meanwhile is all the next transaction carries.
func Queue(batchRows int) chan Item { return make(chan Item, max(4096, batchRows)) }

// TxnWriter publishes items inside Kafka transactions, so that a database
// transaction's records become visible all together or not at all. Under
// load several whole database transactions share one Kafka transaction,
// ended by row count or time; a Kafka transaction never ends inside a
// database transaction. Client must have a transactional id.
type TxnWriter struct {
	Client *kgo.Client
	// A Kafka transaction ends after the database transaction that brings
	// it to BatchRows records, or once Linger has passed since it began
	// and nothing more is queued: it waits that long for more.
	BatchRows int
	Linger    time.Duration
	// Timeout is kafka.transaction_timeout: a Kafka transaction the broker
	// has not acknowledged by then fails the writer (the broker aborts it
	// then anyway), so that a link too slow for it is found, not waited on;
	// 0 waits for ever. A request the broker leaves unanswered past the
	// client's own deadline fails the writer sooner (NewTxnWriter).
	Timeout time.Duration
	Log     *slog.Logger
	// CrashPoint names this writer's crash point (see package crashpoint).
	CrashPoint string
	// Stage labels the writer's metrics ("published", "republished").
	Stage string
	// MaxBytes is kafka.max_message_bytes: a bigger record stops the writer.
	MaxBytes int
	// Committed, if set, is called with the Mark of the last item of every
	// Kafka transaction committed.
	Committed func(mark int64)

	stall stall
}

// NewTxnWriter is a TxnWriter on a new client of opts with transactional
// id id, the timeout and size limit of c, and an Unanswered hook that fails
// the open Kafka transaction as soon as the client gives up a request the
// broker did not answer in time (a produce: its 10 s timeout and 10 s
// more), where a half-open link would otherwise hold it until Timeout.
func NewTxnWriter(opts []kgo.Opt, id string, c config.Kafka, log *slog.Logger, extra ...kgo.Opt) (*TxnWriter, error) {
	w := &TxnWriter{Timeout: c.TransactionTimeout, MaxBytes: c.MaxMessageBytes, Log: log}
	cl, err := kgo.NewClient(append(append(opts[:len(opts):len(opts)],
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(c.TransactionTimeout),
		kgo.WithHooks(Unanswered{On: w.stall.fail}),
	), extra...)...)
	if err != nil {
		return nil, service.Permanent(err)
	}
	w.Client = cl
	return w, nil
}

// stall ends the wait it watches with the reason it fails with.
type stall struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

// watch has the next fail end a wait through cancel (nil: none).
func (s *stall) watch(cancel context.CancelCauseFunc) {
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
}

func (s *stall) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		s.cancel(err)
	}
}

// recordOverhead bounds what a record adds to its key, value and headers
// in a batch of its own.
const recordOverhead = 512

// tooLarge is the error for a record over kafka.max_message_bytes.
func tooLarge(rec *kgo.Record, size, limit int) error {
	return service.Permanentf("the record of %s on %s (%s, transaction %s) is %d bytes, over kafka.max_message_bytes = %d: raise kafka.max_message_bytes on every service "+
		"(a topic lockstep creates gets it as max.message.bytes; an existing topic needs kafka-configs --alter --add-config max.message.bytes=..., and the brokers message.max.bytes and replica.fetch.max.bytes at least as large), then restart. Nothing of the transaction was published",
		header(rec, schemas.HeaderTable), rec.Topic, header(rec, schemas.HeaderOp), header(rec, schemas.HeaderGTID), size, limit)
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Run publishes until in is drained and closed, ctx ends, or a write fails.
// A failed batch is aborted: nothing of it becomes visible.
func (w *TxnWriter) Run(ctx context.Context, in <-chan Item) error {
	for {
		var it Item
		var ok bool
		select {
		case it, ok = <-in:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
		if err := w.batch(ctx, it, in); err != nil {
			// Across a link that does not answer, an abort would only
			// wait out its own timeout: the broker aborts the transaction
			// when the next writer of the id starts, or by its timeout.
			if !errors.Is(err, ErrUnanswered) {
				w.abort()
			}
			if ctx.Err() != nil {
				return nil
			}
			return Classify(err)
		}
	}
}

func (w *TxnWriter) batch(ctx context.Context, it Item, in <-chan Item) error {
	if err := w.Client.BeginTransaction(); err != nil {
		return fmt.Errorf("begin Kafka transaction: %w", err)
	}
	// Every wait of the transaction ends when the client gives up a
	// request the broker left unanswered (see NewTxnWriter).
	wctx, unanswered := context.WithCancelCause(ctx)
	defer unanswered(nil)
	w.stall.watch(unanswered)
	defer w.stall.watch(nil)
	var (
		mu       sync.Mutex
		firstErr error
	)
	done := func(rec *kgo.Record, err error) {
		if err != nil {
			if errors.Is(err, kerr.MessageTooLarge) {
				// the broker's or the topic's limit is below ours
				err = tooLarge(rec, len(rec.Value), w.MaxBytes)
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("produce to %s[%d]: %w", rec.Topic, rec.Partition, err)
			}
			mu.Unlock()
		}
	}
	started, rows, txns := time.Now(), 0, 0
	var linger *time.Timer
	for {
		size := len(it.Rec.Key) + len(it.Rec.Value) + recordOverhead
		for _, h := range it.Rec.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if w.MaxBytes > 0 && size > w.MaxBytes {
			return tooLarge(it.Rec, size, w.MaxBytes)
		}
		w.Client.Produce(ctx, it.Rec, done)
		crashpoint.Hit(w.CrashPoint)
		rows++
		if it.Last {
			txns++
		}
		// Between database transactions, the Kafka transaction waits up
		// to Linger for more: under a steady load each Kafka transaction
		// (a flush, a commit marker, a fetch and a commit downstream)
		// carries many database transactions, not one. What is queued
		// already goes in past Linger, up to BatchRows: a backlog, or what
		// queued while the transaction before committed (two round trips
		// across a WAN), fills whole transactions.
		queued := len(in) > 0
		if it.Last && (rows >= w.BatchRows || (!queued && time.Since(started) >= w.Linger)) {
			break
		}
		var lingered <-chan time.Time
		if it.Last && !queued {
			if linger == nil {
				linger = time.NewTimer(w.Linger - time.Since(started))
				defer linger.Stop()
			}
			lingered = linger.C
		}
		next, ok := Item{}, false
		select {
		case next, ok = <-in:
			if !ok && !it.Last {
				return fmt.Errorf("input closed inside a database transaction")
			}
		case <-lingered:
		case <-wctx.Done():
			return context.Cause(wctx)
		}
		if !ok {
			break // lingered, or the input ended: commit what is open
		}
		it = next
	}
	tctx, cancel := wctx, context.CancelFunc(func() {})
	if w.Timeout > 0 {
		tctx, cancel = context.WithDeadline(wctx, started.Add(w.Timeout))
	}
	defer cancel()
	err := w.Client.Flush(tctx)
	if err == nil {
		mu.Lock()
		err = firstErr
		mu.Unlock()
		if err != nil {
			return err
		}
		if err = w.Client.EndTransaction(tctx, kgo.TryCommit); err != nil {
			err = fmt.Errorf("commit Kafka transaction of %d records up to %s %s: %w", rows, schemas.HeaderGTID, header(it.Rec, schemas.HeaderGTID), err)
		}
	} else {
		err = fmt.Errorf("flush %d records: %w", rows, err)
	}
	if cause := context.Cause(wctx); err != nil && ctx.Err() == nil && cause != nil {
		return fmt.Errorf("the Kafka transaction of %d records up to %s %s: %w", rows, schemas.HeaderGTID, header(it.Rec, schemas.HeaderGTID), cause)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("the Kafka transaction of %d records up to %s %s was not acknowledged within kafka.transaction_timeout (%s), after which the broker aborts it: the link to the broker is down, half-open or too slow for transactions this big (producer/applier batch_rows): %w",
			rows, schemas.HeaderGTID, header(it.Rec, schemas.HeaderGTID), w.Timeout, err)
	}
	if err != nil {
		return err
	}
	if w.Committed != nil {
		w.Committed(it.Mark)
	}
	metrics.Rows.WithLabelValues(w.Stage).Add(float64(rows))
	metrics.Transactions.WithLabelValues(w.Stage).Add(float64(txns))
	return nil
}

// abort ends an open Kafka transaction after a failure or at shutdown, so
// that readers are not held back until the transaction times out.
func (w *TxnWriter) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Client.AbortBufferedRecords(ctx); err != nil {
		w.Log.Warn("drop buffered records", "err", err)
	}
	if err := w.Client.EndTransaction(ctx, kgo.TryAbort); err != nil {
		w.Log.Warn("abort Kafka transaction", "err", err)
	}
}
