package status

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

// RPO is what a stage would lose if the primary site were lost now: the
// transactions the primary has committed that the stage does not hold.
type RPO struct {
	Transactions int64
	// Oldest is the primary commit time of the oldest of them; zero when
	// there is none.
	Oldest time.Time
	// Unpublished: the oldest is not in the primary log yet (the producer
	// is behind or down), so Oldest is the commit time of the newest
	// transaction published, and the age an upper bound.
	Unpublished bool
}

// Age is the age of the oldest missing transaction at now; 0 when none.
func (r RPO) Age(now time.Time) time.Duration {
	if r.Transactions == 0 || r.Oldest.IsZero() {
		return 0
	}
	return max(now.Sub(r.Oldest), 0)
}

func (r RPO) String() string {
	switch {
	case r.Transactions == 0:
		return "0"
	case r.Oldest.IsZero():
		return fmt.Sprintf("%d txn", r.Transactions)
	case r.Unpublished:
		return fmt.Sprintf("%d txn, oldest <= %s (not in the primary log yet)", r.Transactions, r.Age(time.Now()).Round(time.Millisecond))
	}
	return fmt.Sprintf("%d txn, oldest %s", r.Transactions, r.Age(time.Now()).Round(time.Millisecond))
}

// rpoApplied is the standby database's RPO: the primary's transactions
// missing from the checkpoint's GTID set.
func (r *reader) rpoApplied(ctx context.Context, primary, standby mysql.RowQuerier) (RPO, error) {
	cp, err := mysql.Checkpoint(ctx, standby, r.cfg.Applier.Name)
	if err != nil {
		return RPO{}, err
	}
	return r.rpoFrom(ctx, primary, cp.Offset+1, func(context.Context, *schemas.Record, kafka.Bounds) (string, error) { return cp.GTIDs, nil })
}

// rpoCached is the cache's RPO. The cache holds a primary transaction once
// every record of it reached the cache: it lacks what starts at the
// smallest primary offset among the first records its group has not read
// on each partition of its topic and the first primary record the standby
// log does not hold yet.
func (r *reader) rpoCached(ctx context.Context, primary mysql.RowQuerier) (RPO, error) {
	topic := r.cfg.CacheTopic()
	next, err := r.groupOffsets(ctx, topic)
	if err != nil {
		return RPO{}, err
	}
	bounds, err := kafka.PartitionBounds(ctx, r.adm, topic)
	if err != nil {
		return RPO{}, err
	}
	// A cache fed from the primary log (at the primary site) reads primary
	// offsets themselves.
	lacks, fromPrimary := int64(math.MaxInt64), topic == r.cfg.Kafka.PrimaryTopic
	if !fromPrimary {
		published, _, err := LastPublished(ctx, r.opts, topic, bounds)
		if err != nil {
			return RPO{}, err
		}
		lacks = published + 1
	}
	for p, b := range bounds {
		if from := max(next[p], b.Start); from < b.End {
			rec, at, err := r.firstAt(ctx, topic, p, from, b.End)
			switch {
			case err != nil:
				return RPO{}, err
			case rec != nil && fromPrimary:
				lacks = min(lacks, at)
			case rec != nil && rec.Standby != nil:
				lacks = min(lacks, rec.Standby.PrimaryOffset)
			}
		}
	}
	return r.rpoFrom(ctx, primary, lacks, r.setBefore)
}

// rpoFrom measures an RPO from the first primary-log offset a stage lacks
// and the GTID set it holds before the record there (covered, given the
// primary log's offsets before that record).
func (r *reader) rpoFrom(ctx context.Context, primary mysql.RowQuerier, lacks int64, covered func(context.Context, *schemas.Record, kafka.Bounds) (string, error)) (RPO, error) {
	topic := r.cfg.Kafka.PrimaryTopic
	bounds, err := kafka.PartitionBounds(ctx, r.adm, topic)
	if err != nil {
		return RPO{}, err
	}
	b := bounds[0]
	var out RPO
	var held string
	rec, at, err := r.firstAt(ctx, topic, 0, max(lacks, b.Start), b.End)
	if err != nil {
		return RPO{}, err
	}
	if rec != nil {
		out.Oldest = time.UnixMilli(rec.Source.CommitTimeMS)
		held, err = covered(ctx, rec, kafka.Bounds{Start: b.Start, End: at})
	} else {
		// The stage holds the whole primary log: what it lacks, the
		// producer has not published.
		out.Unpublished = true
		var last *schemas.Record
		if last, err = r.lastTxn(ctx, topic, b, ""); last != nil {
			held, out.Oldest = last.Source.GTIDSet, time.UnixMilli(last.Source.CommitTimeMS)
		}
	}
	if err != nil {
		return RPO{}, err
	}
	_, out.Transactions, err = mysql.Unapplied(ctx, primary, held)
	if err != nil {
		return RPO{}, fmt.Errorf("the primary's GTID position: %w", err)
	}
	return out, nil
}

// setBefore is the primary's GTID set before the transaction of rec
// (which follows the primary log's offsets before): the set on the last
// record of the transaction before it. A snapshot's transactions stand at
// the snapshot's position.
func (r *reader) setBefore(ctx context.Context, rec *schemas.Record, before kafka.Bounds) (string, error) {
	if rec.Txn.Snapshot {
		return rec.Txn.GTID, nil
	}
	prev, err := r.lastTxn(ctx, r.cfg.Kafka.PrimaryTopic, before, rec.Txn.GTID)
	if err != nil || prev == nil {
		return "", err
	}
	return prev.Source.GTIDSet, nil
}

// lastTxn is the last record within b that ends a transaction other than
// except and carries the primary's GTID set after it.
func (r *reader) lastTxn(ctx context.Context, topic string, b kafka.Bounds, except string) (*schemas.Record, error) {
	var found *schemas.Record
	kr, err := kafka.LastWhere(ctx, r.opts, topic, 0, b, func(kr *kgo.Record) bool {
		rec, err := schemas.Decode(kr.Value)
		if err != nil || !rec.Txn.Last || rec.Source.GTIDSet == "" || rec.Txn.GTID == except {
			return false
		}
		found = rec
		return true
	})
	if err != nil || kr == nil {
		return nil, err
	}
	return found, nil
}
