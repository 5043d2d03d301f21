// Command producer tails the primary's binlog and publishes every committed
// transaction to the primary log topic, one record per changed row, inside
// Kafka transactions. It resumes from the GTID position stored in the last
// committed record of the topic.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

func main() {
	var fromStart bool
	cmd := service.Command("producer", "Publish the primary's committed transactions to the primary log",
		func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			return run(ctx, cfg, log, fromStart)
		})
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "on an empty primary log, start from the oldest binlog instead of the current position")
	cmd.AddCommand(snapshotCommand(), reseedCommand(), status.Command(), status.HealthCommand("producer"), verify.Command())
	service.Main(cmd)
}

// run is one life of the producer: find the position, then tail and publish
// until ctx ends or something fails.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger, fromStart bool) error {
	p, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.db.Close()
	db, opts, pos := p.db, p.opts, p.pos
	isNew := pos == nil
	if isNew {
		pos = &schemas.Source{}
		if !fromStart {
			if pos.GTIDSet, err = p.flavor.BinlogGTIDs(ctx, db); err != nil {
				return fmt.Errorf("the primary's current position: %w", err)
			}
		}
	}

	w, err := newWriter(cfg, opts, log)
	if err != nil {
		return err
	}
	defer w.Client.Close()
	if isNew {
		// The start position is committed, in a Kafka transaction of its
		// own, before anything is read: a producer that dies before its
		// first transaction then resumes here, not at whatever is "current"
		// when it comes back.
		if err := commitStart(ctx, w, cfg.Kafka.PrimaryTopic, pos.GTIDSet); err != nil || ctx.Err() != nil {
			return err
		}
		log.Info("primary log was empty: started a new stream", "from_gtid", pos.GTIDSet, "from_start", fromStart)
	}
	records, items := make(chan []*schemas.Record, recordQueue), kafka.Queue(cfg.Producer.BatchRows)
	cs, err := loadCharsets(ctx, db)
	if err != nil {
		return err
	}
	t, err := newTailer(*cfg, log, p.flavor, cs, newLiveSchema(db), *pos, records)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.run(ctx) })
	g.Go(func() error { watchRetention(ctx, db, t, log); return nil })
	g.Go(func() error { return encode(ctx, cfg.Kafka.PrimaryTopic, records, items) })
	g.Go(func() error { return w.Run(ctx, items) })
	return g.Wait()
}

// opened is what every writer of the primary log starts with (open).
type opened struct {
	db     *sql.DB // the primary, checked
	flavor mysql.Flavor
	opts   []kgo.Opt       // the Kafka client's
	pos    *schemas.Source // where the stream resumes (the source of the log's last record); nil when the primary log is empty
}

func open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*opened, error) {
	db, err := mysql.Open(ctx, "primary", cfg.Primary)
	if err != nil {
		return nil, err
	}
	p := &opened{db: db}
	p.flavor, err = preflight(ctx, db, cfg.Primary.Address, log)
	if err == nil {
		p.opts, err = kafka.Connect(ctx, cfg.Kafka)
	}
	if err == nil {
		p.pos, err = resumePosition(ctx, cfg, p.opts)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

// newWriter is the primary log's transactional writer. Its transactional
// id fences any other writer of the primary log (a second producer, or a
// snapshot) that is still running.
func newWriter(cfg *config.Config, opts []kgo.Opt, log *slog.Logger) (*kafka.TxnWriter, error) {
	w, err := kafka.NewTxnWriter(opts, cfg.Producer.TransactionalID, cfg.Kafka, log, partitionZero)
	if err != nil {
		return nil, err
	}
	w.BatchRows, w.Linger, w.CrashPoint, w.Stage = cfg.Producer.BatchRows, cfg.Producer.Linger, crashpoint.ProducerMidTxn, "published"
	return w, nil
}

// partitionZero pins every record to partition 0: the primary log is one
// total order, that of the primary's commits.
var partitionZero = kgo.RecordPartitioner(kgo.ManualPartitioner())

// resumePosition reads the positions stored in the last committed record
// of the primary log: what it holds through, and where to read the binlog
// from; nil when the log is empty.
func resumePosition(ctx context.Context, cfg *config.Config, opts []kgo.Opt) (*schemas.Source, error) {
	adm, err := kafka.Admin(opts)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	topic := cfg.Kafka.PrimaryTopic
	info, err := kafka.EnsureTopic(ctx, adm, topic, 1, cfg.Kafka.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	if info.Partitions != 1 {
		return nil, service.Permanentf("topic %s (kafka.primary_topic) has %d partitions; the primary log needs exactly 1 to keep the primary's commit order", topic, info.Partitions)
	}
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return nil, err
	}
	rec, err := kafka.LastCommitted(ctx, opts, topic, 0, bounds[0])
	if err != nil || rec == nil {
		return nil, err
	}
	r, err := schemas.Decode(rec.Value)
	switch {
	case err != nil:
	case r.Txn.Snapshot:
		return nil, service.Permanentf("the primary log %s ends inside a snapshot (offset %d): producer snapshot stopped before it published the snapshot's position. Bootstrap again: stop the services, delete both topics, drop the replicated databases on the standby and delete its row in lockstep.checkpoint, run producer snapshot, then start the services",
			topic, rec.Offset)
	case !r.Txn.Last:
		err = fmt.Errorf("it does not end a transaction")
	}
	if err != nil {
		return nil, service.Permanentf("last committed record of %s at offset %d cannot give a resume position: %w", topic, rec.Offset, err)
	}
	return &r.Source, nil
}

// loadCharsets reads which character set each collation id belongs to.
func loadCharsets(ctx context.Context, db *sql.DB) (charsets, error) {
	rows, err := db.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("read the primary's collations: %w", err)
	}
	defer rows.Close()
	cs := make(charsets)
	for rows.Next() {
		var id uint64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		cs[id] = name
	}
	return cs, rows.Err()
}

// commitStart commits the start position pos of a new stream to the
// primary log, in a Kafka transaction of its own.
func commitStart(ctx context.Context, w *kafka.TxnWriter, topic, pos string) error {
	start, err := kafka.NewItem(topic, 0, positionRecord(pos))
	if err != nil {
		return service.Permanent(err)
	}
	one := make(chan kafka.Item, 1)
	one <- start
	close(one)
	return w.Run(ctx, one)
}

// positionRecord marks where a new stream starts: the GTID set pos.
func positionRecord(pos string) *schemas.Record {
	return &schemas.Record{
		SchemaVersion: schemas.SchemaVersion, Op: schemas.OpPosition,
		Txn:    schemas.Txn{GTID: markerGTID(pos), Last: true},
		Source: schemas.Source{GTIDSet: pos, CommitTimeMS: time.Now().UnixMilli()},
	}
}

// markerGTID is the transaction id of records that stand for a position
// (a stream's start, a snapshot) rather than a transaction: one GTID of the
// set, or 0-0-0 for an empty one. The set itself is the position.
func markerGTID(pos string) string {
	if set, err := mysql.ParseGTIDSet(pos); err == nil && !set.IsEmpty() {
		return set.First()
	}
	return "0-0-0"
}
