package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// republisher turns transactions the standby has committed into standby-log
// records, keyed by row so that each row's changes stay in one partition and
// in order. It never sees a transaction before its standby COMMIT.
type republisher struct {
	topic string
	out   chan<- kafka.Item
	// source is the primary log, read back for transactions too big to keep.
	source string
	opts   []kgo.Opt
	// changes are the changes the standby made itself, read back from
	// lockstep.standby_changes when too many to keep or after a restart.
	changes *standbyChanges
	// published is the highest primary offset of a committed standby-log
	// transaction.
	published atomic.Int64
	// epoch is the checkpoint's: the standby section names it beside each
	// primary offset.
	epoch int64
}

// publish sends the transaction in o to the standby log and empties o: its
// records, with the changes the standby made itself before the last one
// (so that the last record of every transaction in the standby log is the
// one with its highest primary offset, as status.LastPublished expects).
func (p *republisher) publish(ctx context.Context, o *outbox, committedAt time.Time) error {
	defer o.reset()
	made := o.made
	if o.madeSpilled {
		var err error
		if made, err = p.changes.load(ctx, o.first, o.last); err != nil {
			return err
		}
	}
	index := 0
	primary := func(w *kgo.Record, last bool) error {
		index++
		return p.sendPrimary(ctx, w, committedAt, index-1, last, last && len(made) > 0)
	}
	var lastWire *kgo.Record
	each := func(w *kgo.Record, last bool) error {
		if last {
			lastWire = w
			return nil
		}
		return primary(w, false)
	}
	if !o.spilled {
		for i, w := range o.wires {
			if err := each(w, i == len(o.wires)-1); err != nil {
				return err
			}
		}
	} else {
		// Offsets first..last hold exactly the committed copy of the transaction.
		err := kafka.Scan(ctx, p.opts, p.source, 0, o.first, o.last+1, func(rec *kgo.Record) error {
			return each(rec, rec.Offset == o.last)
		})
		if err != nil {
			return err
		}
	}
	if lastWire == nil {
		return fmt.Errorf("transaction at %s offsets %d..%d has no last record", p.source, o.first, o.last)
	}
	for _, m := range made {
		index++
		if err := p.send(ctx, m, m.Standby.PrimaryOffset, committedAt, index-1, false); err != nil {
			return err
		}
	}
	return primary(lastWire, true)
}

// sendPrimary publishes a primary-log record (w, as read) as the index-th
// of its standby transaction. Records come in their transaction's order,
// so only the last one, after the changes the standby made, is numbered
// otherwise than on the primary (renumbered): it is encoded again. The
// others keep their bytes, key and headers, with the standby section
// added.
func (p *republisher) sendPrimary(ctx context.Context, w *kgo.Record, committedAt time.Time, index int, last, renumbered bool) error {
	if renumbered || len(w.Key) == 0 {
		r, err := schemas.Decode(w.Value)
		if err != nil {
			return service.Permanentf("republish %s offset %d: %w", p.source, w.Offset, err)
		}
		return p.send(ctx, r, w.Offset, committedAt, index, last)
	}
	v, err := schemas.WithStandby(w.Value, &schemas.Standby{PrimaryOffset: w.Offset, Epoch: p.epoch, CommitTimeMS: committedAt.UnixMilli()})
	if err != nil {
		return service.Permanentf("republish %s offset %d: %w", p.source, w.Offset, err)
	}
	// The partition comes from the key: the standby client hashes it.
	return p.enqueue(ctx, kafka.Item{Last: last, Mark: w.Offset, Rec: &kgo.Record{Topic: p.topic, Partition: -1, Key: w.Key, Value: v, Headers: w.Headers}})
}

// send publishes a record, encoded, as the index-th of its standby
// transaction. A change the standby made itself comes with its standby
// section.
func (p *republisher) send(ctx context.Context, r *schemas.Record, offset int64, committedAt time.Time, index int, last bool) error {
	sr := *r
	st := schemas.Standby{PrimaryOffset: offset}
	if r.Standby != nil {
		st = *r.Standby
	}
	st.CommitTimeMS, st.Epoch = committedAt.UnixMilli(), p.epoch
	sr.Txn.Index, sr.Txn.Last, sr.Standby = index, last, &st
	// The partition comes from the key: the standby client hashes it.
	it, err := kafka.NewItem(p.topic, -1, &sr)
	if err != nil {
		return service.Permanentf("republish %s offset %d: %w", p.source, offset, err)
	}
	it.Mark = offset
	return p.enqueue(ctx, it)
}

func (p *republisher) enqueue(ctx context.Context, it kafka.Item) error {
	select {
	case p.out <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outbox holds one transaction's records until the standby has committed
// it. Up to outboxRecords records or outboxBytes of them are kept; a bigger
// transaction keeps only its offset range and is read back from the primary
// log, so memory stays bounded whatever the size of a transaction.
type outbox struct {
	wires       []*kgo.Record // its records as read from the primary log
	bytes       int
	first, last int64
	spilled     bool
	// made are the changes the standby made itself, kept as records are;
	// beyond, or when madeSpilled is set by hand, they are read back from
	// lockstep.standby_changes.
	made        []*schemas.Record
	madeCount   int
	madeBytes   int
	madeSpilled bool
}

const (
	outboxRecords = 10000
	outboxBytes   = 16 << 20
)

// add adds a record, decoded and as read; the first record of a
// transaction starts the outbox over.
func (o *outbox) add(r *schemas.Record, wire *kgo.Record) {
	off := wire.Offset
	if r.Txn.Index == 0 {
		o.reset()
		o.first = off
	}
	o.last = off
	if o.spilled {
		return
	}
	o.bytes += len(wire.Value)
	if len(o.wires) >= outboxRecords || o.bytes > outboxBytes {
		o.reset()
		o.spilled = true
		return
	}
	o.wires = append(o.wires, wire)
}

// addMade adds a change the standby made itself, of size bytes.
func (o *outbox) addMade(r *schemas.Record, size int) {
	o.madeCount++
	o.madeBytes += size
	if o.madeSpilled {
		return
	}
	if len(o.made) >= outboxRecords || o.madeBytes > outboxBytes {
		clear(o.made)
		o.made, o.madeSpilled = o.made[:0], true
		return
	}
	o.made = append(o.made, r)
}

func (o *outbox) reset() {
	clear(o.wires)
	clear(o.made)
	o.wires, o.bytes, o.spilled = o.wires[:0], 0, false
	o.made, o.madeCount, o.madeBytes, o.madeSpilled = o.made[:0], 0, 0, false
}

// standbyChanges reads lockstep.standby_changes: the changes the standby
// made itself, as the applier stored them with the rows.
type standbyChanges struct {
	db   *sql.DB
	name string // applier.name
}

// load returns the changes the records at primary offsets first..last set
// off, in order.
func (c *standbyChanges) load(ctx context.Context, first, last int64) ([]*schemas.Record, error) {
	rows, err := c.db.QueryContext(ctx, sqlSelectChanges, c.name, first, last)
	if err != nil {
		return nil, mysql.Classify(fmt.Errorf("read the changes the standby made at primary offsets %d..%d: %w", first, last, err))
	}
	defer rows.Close()
	var out []*schemas.Record
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		r, err := schemas.Decode(b)
		if err == nil && (r.Standby == nil || r.Standby.Cascade == nil) {
			err = fmt.Errorf("it is not a change the standby made")
		}
		if err != nil {
			return nil, service.Permanentf("lockstep.standby_changes, primary offsets %d..%d: %w", first, last, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// prune deletes the changes published up to primary offset through, and
// those beyond the checkpoint's offset applied: a rewound apply's.
func (c *standbyChanges) prune(ctx context.Context, through, applied int64) error {
	if _, err := c.db.ExecContext(ctx, sqlPruneChanges, c.name, through, applied); err != nil {
		return mysql.Classify(fmt.Errorf("delete published changes from lockstep.standby_changes: %w", err))
	}
	return nil
}
