// Package status reports where each stage stands: its position, how far it
// is behind its input in records and in time, and whether it runs.
package status

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Stage is one stage's line of the report.
type Stage struct {
	Name, Position string
	// Behind counts what the stage has not handled yet: transactions for
	// the producer, topic offsets for the appliers; -1 when unknown.
	Behind int64
	// Lag is the age of the oldest change not handled yet: 0 when caught
	// up, -1 when unknown.
	Lag time.Duration
	// RPO is what the stage would lose with the primary site: the
	// transactions the primary committed that it does not hold ("-" for
	// the producer, whose BEHIND says it).
	RPO   string
	State string
}

// Command is the status subcommand every service binary has.
func Command() *cobra.Command {
	return service.Overview("status", "Where each stage stands, how far behind, whether it runs (every shard's, of a config of shards that names none)", Run)
}

// Run prints the report of every stage as a table; of a config of shards
// that names none, the stages of every shard, each named after its shard.
func Run(ctx context.Context, cfg *config.Config, out io.Writer) error {
	configs := []*config.Config{cfg}
	if cfg.OneSource() != nil { // shards, and none named: every one
		configs = nil
		for _, name := range cfg.ShardNames() {
			shard, err := cfg.ForShard(name)
			if err != nil {
				return err
			}
			configs = append(configs, shard)
		}
	}
	var stages []Stage
	for _, c := range configs {
		ss, err := Report(ctx, c)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if c != cfg {
				s.Name = c.Shard + " " + s.Name
			}
			stages = append(stages, s)
		}
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tPOSITION\tBEHIND\tLAG\tRPO\tSTATE")
	for _, s := range stages {
		behind, lag := "?", "?"
		if s.Behind >= 0 {
			behind = fmt.Sprint(s.Behind)
		}
		if s.Lag >= 0 {
			lag = s.Lag.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Position, behind, lag, s.RPO, s.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range configs {
		if addr := c.MetricsAddress("cache-applier"); addr != "" {
			if line := consistency(addr); line != "" {
				fmt.Fprintln(out, strings.TrimSpace(c.Shard+" "+line))
			}
		}
	}
	return nil
}

// Report reads every stage's position from where it is durable: the
// primary's binlog position and the primary log (producer), the standby's
// checkpoint (storage-applier), the cache group's committed offsets
// (cache-applier); and each applier's RPO against the primary. With the
// primary unreachable, the appliers' lines still come, with the RPO their
// services measured last.
func Report(ctx context.Context, cfg *config.Config) ([]Stage, error) {
	r, err := newReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	primary, perr := mysql.Open(ctx, "primary", cfg.Primary)
	if perr == nil {
		defer primary.Close()
	}
	var out []Stage
	for _, f := range []func(context.Context, *sql.DB, error) (Stage, error){r.producer, r.storage, r.cache} {
		s, err := f(ctx, primary, perr)
		if err != nil {
			return nil, fmt.Errorf("status of the %s: %w", s.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// rpo fills a stage's RPO: measured against the primary, or what its
// service measured last when the primary is unreachable (perr).
func (r *reader) rpo(s *Stage, service, stage string, perr error, measure func() (RPO, error)) {
	if perr == nil {
		rpo, err := measure()
		if s.RPO = rpo.String(); err != nil {
			s.RPO = "? (" + err.Error() + ")"
		}
		return
	}
	if s.RPO = "? (primary unreachable)"; perr == errNoPrimary {
		s.RPO = "not measured"
		return
	}
	if addr := r.cfg.MetricsAddress(service); addr != "" {
		if last, err := lastRPO(addr, stage); err == nil {
			s.RPO = "? now (primary unreachable); last known: " + last
		}
	}
}

// Cache is the cache-applier's line alone (it needs no database), read
// through the caller's Kafka clients, for a caller that polls it.
func Cache(ctx context.Context, cfg *config.Config, opts []kgo.Opt, adm *kadm.Client) (Stage, error) {
	r := &reader{cfg: cfg, opts: opts, adm: adm}
	return r.cache(ctx, nil, errNoPrimary)
}

type reader struct {
	cfg  *config.Config
	opts []kgo.Opt
	adm  *kadm.Client
}

func newReader(ctx context.Context, cfg *config.Config) (*reader, error) {
	opts, adm, err := kafka.ConnectAdmin(ctx, cfg.Kafka)
	if err != nil {
		return nil, err
	}
	return &reader{cfg: cfg, opts: opts, adm: adm}, nil
}

func (r *reader) close() { r.adm.Close() }

func (r *reader) producer(ctx context.Context, db *sql.DB, perr error) (Stage, error) {
	s := Stage{Name: "producer", Behind: -1, Lag: -1, RPO: "-", State: r.probe("producer")}
	if perr != nil {
		s.Position = "? (primary unreachable: " + perr.Error() + ")"
		return s, nil
	}
	last, err := r.last(ctx, r.cfg.Kafka.PrimaryTopic, 0)
	if err != nil {
		return s, err
	}
	published := ""
	if last != nil {
		published = last.Source.GTIDSet
	}
	head, behind, err := mysql.Unapplied(ctx, db, published)
	if err != nil || last == nil {
		s.Position = "nothing published yet; primary at " + head
		return s, err
	}
	s.Position = fmt.Sprintf("published through GTID %s; primary at %s", last.Txn.GTID, head)
	if last.Source.Resume != "" {
		s.State += "; XA transactions prepared and not yet committed or rolled back: their rows wait in the producer, which re-reads the binlog from GTID position " + last.Source.Resume + " after a restart (XA RECOVER on the primary lists them)"
	}
	if s.Behind = behind; behind == 0 {
		s.Lag = 0
	}
	return s, nil
}

func (r *reader) storage(ctx context.Context, primary *sql.DB, perr error) (Stage, error) {
	s := Stage{Name: "storage-applier", Behind: -1, Lag: -1, State: r.probe("storage-applier")}
	db, err := mysql.Open(ctx, "standby", r.cfg.Standby)
	if err != nil {
		return s, err
	}
	defer db.Close()
	cp, err := mysql.Checkpoint(ctx, db, r.cfg.Applier.Name)
	if err != nil {
		return s, err
	}
	var holder sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", mysql.ApplierLock(r.cfg.Applier.Name)).Scan(&holder); err == nil {
		if holder.Valid {
			s.State += fmt.Sprintf("; active on standby connection %d", holder.Int64)
		} else {
			s.State += "; no active applier holds the standby lock"
		}
	}
	if ro, err := mysql.ReadOnly(ctx, db); err == nil && !ro {
		s.State += "; warning: " + mysql.WritableStandby
	}
	s.Position = fmt.Sprintf("applied %s offset %d, GTID %s", r.cfg.Kafka.PrimaryTopic, cp.Offset, cp.GTIDs)
	if cp.Epoch > 0 {
		s.Position += fmt.Sprintf(", epoch %d", cp.Epoch)
	}
	r.rpo(&s, "storage-applier", RPOApplied, perr, func() (RPO, error) { return r.rpoApplied(ctx, primary, db) })
	s.Behind, s.Lag, err = r.behind(ctx, r.cfg.Kafka.PrimaryTopic, map[int32]int64{0: cp.Offset + 1})
	return s, err
}

func (r *reader) cache(ctx context.Context, primary *sql.DB, perr error) (Stage, error) {
	topic, group := r.cfg.CacheTopic(), r.cfg.Cache.Group
	s := Stage{Name: "cache-applier", Behind: -1, Lag: -1, State: r.probe("cache-applier")}
	next, err := r.groupOffsets(ctx, topic)
	if err != nil {
		return s, err
	}
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(next)) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, next[p]))
	}
	s.Position = fmt.Sprintf("group %s at %s offsets %s", group, topic, strings.Join(parts, " "))
	r.rpo(&s, "cache-applier", RPOCached, perr, func() (RPO, error) { return r.rpoCached(ctx, primary) })
	if gs, err := r.adm.DescribeGroups(ctx, group); err == nil {
		s.State += fmt.Sprintf("; %d member(s) in group %s", len(gs[group].Members), group)
	}
	s.Behind, s.Lag, err = r.behind(ctx, topic, next)
	return s, err
}

// LastPublished is the highest primary-log offset already in the standby
// log, and the GTID of its transaction. Every Kafka transaction there holds
// whole database transactions in primary order, so everything up to it has
// been published. -1 when empty.
func LastPublished(ctx context.Context, opts []kgo.Opt, topic string, bounds map[int32]kafka.Bounds) (int64, string, error) {
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

// groupOffsets is the cache group's committed offset of each partition of
// topic: the next offset it reads there.
func (r *reader) groupOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	group := r.cfg.Cache.Group
	committed, err := r.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("read the offsets of group %s: %w", group, err)
	}
	next := make(map[int32]int64)
	for _, o := range committed.Sorted() {
		if o.Topic == topic {
			next[o.Partition] = max(o.At, 0)
		}
	}
	return next, nil
}

// behind counts the offsets of a topic from next (per partition) to its
// end (records and transaction markers), and the age of the oldest record
// among them.
func (r *reader) behind(ctx context.Context, topic string, next map[int32]int64) (int64, time.Duration, error) {
	bounds, err := kafka.PartitionBounds(ctx, r.adm, topic)
	if err != nil {
		return -1, -1, err
	}
	var n int64
	var lag time.Duration
	for p, b := range bounds {
		from := max(next[p], b.Start)
		if from >= b.End {
			continue
		}
		first, _, err := r.firstAt(ctx, topic, p, from, b.End)
		if err != nil {
			return -1, -1, err
		}
		if first == nil {
			continue // only transaction markers left
		}
		n += b.End - from
		lag = max(lag, time.Since(time.UnixMilli(first.Source.CommitTimeMS)))
	}
	return n, lag, nil
}

var (
	errFound     = errors.New("found")
	errNoPrimary = errors.New("not asked")
)

// firstAt is the first record of [from, end) of a partition, and its offset.
func (r *reader) firstAt(ctx context.Context, topic string, p int32, from, end int64) (*schemas.Record, int64, error) {
	var rec *schemas.Record
	at := int64(-1)
	err := kafka.Scan(ctx, r.opts, topic, p, from, end, func(kr *kgo.Record) error {
		var err error
		if rec, err = schemas.Decode(kr.Value); err == nil {
			at, err = kr.Offset, errFound
		}
		return err
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return rec, at, err
}

// last is the last record of a partition, nil if it has none.
func (r *reader) last(ctx context.Context, topic string, p int32) (*schemas.Record, error) {
	bounds, err := kafka.PartitionBounds(ctx, r.adm, topic)
	if err != nil {
		return nil, err
	}
	kr, err := kafka.LastCommitted(ctx, r.opts, topic, p, bounds[p])
	if err != nil || kr == nil {
		return nil, err
	}
	return schemas.Decode(kr.Value)
}

// probe asks the service's /readyz, where this config says it listens.
func (r *reader) probe(service string) string {
	addr := r.cfg.MetricsAddress(service)
	if addr == "" {
		return "unknown (metrics.listen is off)"
	}
	_, state, err := readyz(addr)
	if err != nil {
		return "no answer at " + addr
	}
	return state
}

// readyz asks a metrics listener whether its stage runs.
func readyz(addr string) (bool, string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b)), nil
}

// HealthCommand is the health subcommand of a service binary, for
// container health checks: it exits 0 when the service's stage runs (its
// /readyz answers 200), else non-zero with the reason.
func HealthCommand(name string) *cobra.Command {
	var addr string
	cmd := service.Subcommand("health", "Exit 0 if this service's stage runs (asks its /readyz)", func(_ context.Context, cfg *config.Config, out io.Writer) error {
		if addr == "" {
			addr = cfg.MetricsAddress(name)
		}
		if addr == "" {
			return fmt.Errorf("metrics.listen is off, so the %s answers no health check: set it (auto: 127.0.0.1:9101-9103)", name)
		}
		ok, state, err := readyz(addr)
		if err != nil {
			return fmt.Errorf("the %s does not answer at %s (metrics.listen): %w", name, addr, err)
		}
		if !ok {
			return fmt.Errorf("the %s at %s is not ready: %s", name, addr, state)
		}
		fmt.Fprintln(out, state)
		return nil
	})
	cmd.Flags().StringVar(&addr, "address", "", "host:port of the service's metrics listener (default: from metrics.listen)")
	return cmd
}
