// Package kafka sets up franz-go clients from the config and holds the two
// reads every stage needs on restart: the last committed record of a
// partition, and the committed records of an offset range.
package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// partitionFetchBytes bounds what one fetch brings of a partition:
// compressed bytes, which JSON records inflate about tenfold in memory. A
// broker still returns a first batch bigger than that whole (up to
// max_message_bytes), so this limits memory, not record size. The whole
// fetch may hold more, so that it is the partition limit that ends a fetch:
// the embedded broker leaves aborted transactions unmarked in a fetch that
// fills up its total instead (they would reach read-committed readers).
const partitionFetchBytes = 1 << 20

// Connect returns the options of Options once the brokers answer with
// them, so that a wrong address, certificate or password shows at start,
// said in terms of the config.
func Connect(ctx context.Context, c config.Kafka) ([]kgo.Opt, error) {
	opts, err := Options(c)
	if err != nil {
		return nil, service.Permanent(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, service.Permanent(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil && ctx.Err() == nil {
		how := "no TLS"
		if c.TLS.Enabled {
			how = "TLS (kafka.tls)"
		}
		if c.SASL.Mechanism != "" {
			how += fmt.Sprintf(", SASL %s as %q (kafka.sasl; a broker may just close the connection on a wrong password)", c.SASL.Mechanism, c.SASL.User)
		}
		return nil, fmt.Errorf("reach Kafka at %s (kafka.brokers) with %s: %w", strings.Join(c.Brokers, ","), how, err)
	}
	return opts, nil
}

// Admin is an admin client on the connection options of Connect (and
// extra ones); closing it closes its Kafka client.
func Admin(opts []kgo.Opt, extra ...kgo.Opt) (*kadm.Client, error) {
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)], extra...)...)
	if err != nil {
		return nil, service.Permanent(err)
	}
	return kadm.NewClient(cl), nil
}

// ConnectAdmin is Connect, and an admin client over the same options (one
// for every request of a command), which the caller closes.
func ConnectAdmin(ctx context.Context, c config.Kafka) ([]kgo.Opt, *kadm.Client, error) {
	opts, err := Connect(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	adm, err := Admin(opts)
	if err != nil {
		return nil, nil, err
	}
	return opts, adm, nil
}

// Options are the connection options every client of the config shares.
func Options(c config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.BrokerMaxReadBytes(int32(2 * c.MaxMessageBytes)),
		kgo.FetchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.FetchMaxPartitionBytes(partitionFetchBytes),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RetryTimeout(30 * time.Second),
		kgo.ProducerBatchCompression(codec(c.Compression)),
	}
	// No server name: kgo verifies each broker's certificate against its
	// own host.
	tlsCfg, err := c.TLS.Build("kafka.tls", "")
	if err != nil {
		return nil, err
	}
	switch via := c.Via(); {
	case len(via) > 0:
		opts = append(opts, kgo.Dialer(dialVia(via, tlsCfg)))
	case tlsCfg != nil:
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	switch c.SASL.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// codec is the kgo codec of kafka.compression (validated).
func codec(name string) kgo.CompressionCodec {
	switch name {
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	case "gzip":
		return kgo.GzipCompression()
	}
	return kgo.NoCompression()
}

// dialVia dials a broker at the address kafka.connect_via gives for it,
// with TLS checked against the broker's own name.
func dialVia(via map[string]string, tlsCfg *tls.Config) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second} // kgo's own default
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, ok := via[addr]
		if !ok {
			to = addr
		}
		conn, err := d.DialContext(ctx, network, to)
		if err != nil || tlsCfg == nil {
			return conn, err
		}
		cfg := tlsCfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with broker %s at %s: %w", addr, to, err)
		}
		return tc, nil
	}
}

// Topic is what a service checks of a topic it uses.
type Topic struct {
	Partitions int32
	// ID is the topic's identity: a topic deleted and re-created under the
	// same name gets a new one. Empty when the broker has no topic IDs.
	ID string
}

// EnsureTopic creates the topic when it does not exist and describes it.
// maxBytes is set as the topic's max.message.bytes.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, maxBytes int) (Topic, error) {
	t, ok, err := Describe(ctx, adm, topic)
	if err != nil || ok {
		return t, err
	}
	cfg := map[string]*string{"max.message.bytes": kadm.StringPtr(fmt.Sprint(maxBytes))}
	resp, err := adm.CreateTopic(ctx, partitions, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		// TopicAlreadyExists means another service created it meanwhile: a
		// retry reads it.
		return Topic{}, fmt.Errorf("create topic %s with %d partitions: %w", topic, partitions, err)
	}
	return Topic{Partitions: partitions, ID: topicID(resp.ID)}, nil
}

// Describe reports whether the topic exists and what it is.
func Describe(ctx context.Context, adm *kadm.Client, topic string) (Topic, bool, error) {
	// All topics, not just this one: asking for a missing topic by name makes
	// the client retry for seconds before it answers.
	details, err := adm.ListTopics(ctx)
	if err != nil {
		return Topic{}, false, fmt.Errorf("list topic %s: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok || d.Err != nil {
		return Topic{}, false, nil
	}
	return Topic{Partitions: int32(len(d.Partitions)), ID: topicID(d.ID)}, true, nil
}

func topicID(id kadm.TopicID) string {
	if id == (kadm.TopicID{}) {
		return ""
	}
	return id.String()
}

// Bounds are a partition's first offset and its last stable offset: the end
// that a read-committed consumer can reach.
type Bounds struct{ Start, End int64 }

// PartitionBounds lists the bounds of every partition of a topic.
func PartitionBounds(ctx context.Context, adm *kadm.Client, topic string) (map[int32]Bounds, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := make(map[int32]Bounds)
	for p, o := range ends[topic] {
		out[p] = Bounds{Start: starts[topic][p].Offset, End: o.Offset}
	}
	return out, nil
}

// scanTimeout bounds a range read: a read that cannot reach an offset the
// broker said exists means the broker is stuck, and the caller retries.
const scanTimeout = 60 * time.Second

// OffsetsAt finds, in each partition of topic, the first record written at
// or after t (the end offset where there is none).
func OffsetsAt(ctx context.Context, adm *kadm.Client, topic string, t time.Time) (kadm.ListedOffsets, error) {
	listed, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("find the offsets of %s at %s: %w", topic, t.Format(time.RFC3339), err)
	}
	return listed, nil
}

// Scan delivers, in order, the committed records of [from, end) of one
// partition. It needs a partition whose records up to end are decided
// (end at or below the last stable offset).
func Scan(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, end int64, fn func(*kgo.Record) error) error {
	if from >= end {
		return nil
	}
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NoResetOffset().AtStart()),
		// Control records mark the end of each transaction, so we can tell
		// when the range is fully read even if it ends in a commit marker.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return Classify(fmt.Errorf("read %s[%d] offsets %d..%d: %w", topic, partition, from, end-1, err))
		}
		done := false
		for _, r := range fs.Records() {
			if r.Offset >= end {
				done = true
				break
			}
			if !r.Attrs.IsControl() {
				if err := fn(r); err != nil {
					return err
				}
			}
			if r.Offset >= end-1 {
				done = true
			}
		}
		if done {
			return nil
		}
	}
}

// LastCommitted returns the last committed data record of a partition whose
// records end at end (a last stable offset), or nil when it has none.
func LastCommitted(ctx context.Context, opts []kgo.Opt, topic string, partition int32, b Bounds) (*kgo.Record, error) {
	return LastWhere(ctx, opts, topic, partition, b, func(*kgo.Record) bool { return true })
}

// Holds returns a committed data record of topic (the last of the first
// partition that has one), or nil when the topic is missing or has none:
// whether it is empty, as a command that starts a log anew needs it.
func Holds(ctx context.Context, opts []kgo.Opt, adm *kadm.Client, topic string) (*kgo.Record, error) {
	if _, ok, err := Describe(ctx, adm, topic); err != nil || !ok {
		return nil, err
	}
	bounds, err := PartitionBounds(ctx, adm, topic)
	if err != nil {
		return nil, err
	}
	for p, b := range bounds {
		if rec, err := LastCommitted(ctx, opts, topic, p, b); err != nil || rec != nil {
			return rec, err
		}
	}
	return nil, nil
}

// LastWhere returns the last committed data record within b that keep
// accepts, or nil when none does.
func LastWhere(ctx context.Context, opts []kgo.Opt, topic string, partition int32, b Bounds, keep func(*kgo.Record) bool) (*kgo.Record, error) {
	// Read backwards in growing windows: the record is usually within the
	// last few offsets, behind at most a commit marker.
	for window := int64(64); ; window *= 8 {
		from := max(b.Start, b.End-window)
		var last *kgo.Record
		err := Scan(ctx, opts, topic, partition, from, b.End, func(r *kgo.Record) error {
			if keep(r) {
				last = r
			}
			return nil
		})
		if err != nil || last != nil || from == b.Start {
			return last, err
		}
		b.End = from
	}
}

// ScanTopic delivers the committed records of every partition of a topic,
// partition by partition, each with its decoded lockstep record.
func ScanTopic(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record, *schemas.Record) error) error {
	adm, err := Admin(opts)
	if err != nil {
		return err
	}
	defer adm.Close()
	bounds, err := PartitionBounds(ctx, adm, topic)
	if err != nil {
		return err
	}
	for p, b := range bounds {
		err := Scan(ctx, opts, topic, p, b.Start, b.End, func(kr *kgo.Record) error {
			r, err := schemas.Decode(kr.Value)
			if err != nil {
				return fmt.Errorf("%s[%d] offset %d: %w", topic, p, kr.Offset, err)
			}
			return fn(kr, r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
