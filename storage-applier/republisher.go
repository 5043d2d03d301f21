package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
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
}

// publish sends the transaction in o to the standby log and empties o.
func (p *republisher) publish(ctx context.Context, o *outbox, committedAt time.Time) error {
	defer o.reset()
	if !o.spilled {
		for i, r := range o.records {
			if err := p.send(ctx, r, o.offsets[i], committedAt); err != nil {
				return err
			}
		}
		return nil
	}
	// Offsets first..last hold exactly the committed copy of the transaction.
	return kafka.Scan(ctx, p.opts, p.source, 0, o.first, o.last+1, func(rec *kgo.Record) error {
		r, err := schemas.Decode(rec.Value)
		if err != nil {
			return service.Permanentf("read back %s offset %d: %w", p.source, rec.Offset, err)
		}
		return p.send(ctx, r, rec.Offset, committedAt)
	})
}

func (p *republisher) send(ctx context.Context, r *schemas.Record, offset int64, committedAt time.Time) error {
	sr := *r
	sr.Standby = &schemas.Standby{CommitTimeMS: committedAt.UnixMilli(), PrimaryOffset: offset}
	// The partition comes from the key: the standby client hashes it.
	it, err := kafka.NewItem(p.topic, -1, &sr)
	if err != nil {
		return service.Permanent(err)
	}
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
	records     []*schemas.Record
	offsets     []int64
	bytes       int
	first, last int64
	spilled     bool
}

const (
	outboxRecords = 10000
	outboxBytes   = 16 << 20
)

// add adds a record of size bytes (encoded); the first record of a
// transaction starts the outbox over.
func (o *outbox) add(r *schemas.Record, off int64, size int) {
	if r.Txn.Index == 0 {
		o.reset()
		o.first = off
	}
	o.last = off
	if o.spilled {
		return
	}
	o.bytes += size
	if len(o.records) >= outboxRecords || o.bytes > outboxBytes {
		o.reset()
		o.spilled = true
		return
	}
	o.records = append(o.records, r)
	o.offsets = append(o.offsets, off)
}

func (o *outbox) reset() {
	clear(o.records)
	o.records, o.offsets, o.bytes, o.spilled = o.records[:0], o.offsets[:0], 0, false
}

// lastPublished is the highest primary-log offset already in the standby
// log, and the GTID of its transaction. Every Kafka transaction there holds
// whole database transactions in primary order, so everything up to it has
// been published. -1 when empty.
func lastPublished(ctx context.Context, opts []kgo.Opt, topic string, bounds map[int32]kafka.Bounds) (int64, string, error) {
	last, gtid := int64(-1), ""
	for p, b := range bounds {
		rec, err := kafka.LastCommitted(ctx, opts, topic, p, b)
		if err != nil {
			return 0, "", err
		}
		if rec == nil {
			continue
		}
		r, err := schemas.Decode(rec.Value)
		if err == nil && r.Standby == nil {
			err = fmt.Errorf("it has no standby section")
		}
		if err != nil {
			return 0, "", service.Permanentf("last record of %s[%d] at offset %d: %w", topic, p, rec.Offset, err)
		}
		if r.Standby.PrimaryOffset > last && r.Binlog() {
			gtid = r.Txn.GTID
		}
		last = max(last, r.Standby.PrimaryOffset)
	}
	return last, gtid, nil
}
