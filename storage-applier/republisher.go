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
}

func (p *republisher) publish(ctx context.Context, t *txn, committedAt time.Time) error {
	for i, r := range t.records {
		sr := *r
		sr.Standby = &schemas.Standby{CommitTimeMS: committedAt.UnixMilli(), PrimaryOffset: t.offsets[i]}
		// The partition comes from the key: the standby client hashes it.
		it, err := kafka.NewItem(p.topic, -1, &sr)
		if err != nil {
			return service.Permanent(err)
		}
		select {
		case p.out <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
		if r.Standby.PrimaryOffset > last && r.Op != schemas.OpPosition {
			gtid = r.Txn.GTID
		}
		last = max(last, r.Standby.PrimaryOffset)
	}
	return last, gtid, nil
}
