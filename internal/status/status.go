// Package status reports where each stage stands: its position, how far it
// is behind its input in records and in time, and whether it runs.
package status

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	Lag   time.Duration
	State string
}

// Command is the status subcommand every service binary has.
func Command() *cobra.Command {
	return service.Subcommand("status", "Where each stage stands, how far behind, whether it runs", Run)
}

// Run prints the report of every stage as a table.
func Run(ctx context.Context, cfg *config.Config, out io.Writer) error {
	stages, err := Report(ctx, cfg)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tPOSITION\tBEHIND\tLAG\tSTATE")
	for _, s := range stages {
		behind, lag := "?", "?"
		if s.Behind >= 0 {
			behind = fmt.Sprint(s.Behind)
		}
		if s.Lag >= 0 {
			lag = s.Lag.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Position, behind, lag, s.State)
	}
	return tw.Flush()
}

// Report reads every stage's position from where it is durable: the
// primary's binlog position and the primary log (producer), the standby's
// checkpoint (storage-applier), the cache group's committed offsets
// (cache-applier).
func Report(ctx context.Context, cfg *config.Config) ([]Stage, error) {
	r, err := newReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	var out []Stage
	for _, f := range []func(context.Context) (Stage, error){r.producer, r.storage, r.cache} {
		s, err := f(ctx)
		if err != nil {
			return nil, fmt.Errorf("status of the %s: %w", s.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Cache is the cache-applier's line alone (it needs no database), read
// through the caller's Kafka clients, for a caller that polls it.
func Cache(ctx context.Context, cfg *config.Config, opts []kgo.Opt, adm *kadm.Client) (Stage, error) {
	r := &reader{cfg: cfg, opts: opts, adm: adm}
	return r.cache(ctx)
}

type reader struct {
	cfg  *config.Config
	opts []kgo.Opt
	adm  *kadm.Client
}

func newReader(ctx context.Context, cfg *config.Config) (*reader, error) {
	opts, err := kafka.Connect(ctx, cfg.Kafka)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &reader{cfg: cfg, opts: opts, adm: kadm.NewClient(cl)}, nil
}

func (r *reader) close() { r.adm.Close() }

func (r *reader) producer(ctx context.Context) (Stage, error) {
	s := Stage{Name: "producer", Behind: -1, Lag: -1, State: r.probe("producer")}
	db, err := mysql.Open(ctx, "primary", r.cfg.Primary)
	if err != nil {
		return s, err
	}
	defer db.Close()
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

func (r *reader) storage(ctx context.Context) (Stage, error) {
	s := Stage{Name: "storage-applier", Behind: -1, Lag: -1, State: r.probe("storage-applier")}
	db, err := mysql.Open(ctx, "standby", r.cfg.Standby)
	if err != nil {
		return s, err
	}
	defer db.Close()
	applied, gtid, err := mysql.Checkpoint(ctx, db, r.cfg.Applier.Name)
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
	s.Position = fmt.Sprintf("applied %s offset %d, GTID %s", r.cfg.Kafka.PrimaryTopic, applied, gtid)
	s.Behind, s.Lag, err = r.behind(ctx, r.cfg.Kafka.PrimaryTopic, map[int32]int64{0: applied + 1})
	return s, err
}

func (r *reader) cache(ctx context.Context) (Stage, error) {
	topic, group := r.cfg.CacheTopic(), r.cfg.Cache.Group
	s := Stage{Name: "cache-applier", Behind: -1, Lag: -1, State: r.probe("cache-applier")}
	committed, err := r.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return s, fmt.Errorf("read the offsets of group %s: %w", group, err)
	}
	next := make(map[int32]int64)
	var parts []string
	for _, o := range committed.Sorted() {
		if o.Topic == topic {
			next[o.Partition] = max(o.At, 0)
			parts = append(parts, fmt.Sprintf("%d:%d", o.Partition, o.At))
		}
	}
	s.Position = fmt.Sprintf("group %s at %s offsets %s", group, topic, strings.Join(parts, " "))
	if gs, err := r.adm.DescribeGroups(ctx, group); err == nil {
		s.State += fmt.Sprintf("; %d member(s) in group %s", len(gs[group].Members), group)
	}
	s.Behind, s.Lag, err = r.behind(ctx, topic, next)
	return s, err
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
		first, err := r.first(ctx, topic, p, from, b.End)
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

var errFound = errors.New("found")

// first is the first record of [from, end) of a partition.
func (r *reader) first(ctx context.Context, topic string, p int32, from, end int64) (*schemas.Record, error) {
	var rec *schemas.Record
	err := kafka.Scan(ctx, r.opts, topic, p, from, end, func(kr *kgo.Record) error {
		var err error
		if rec, err = schemas.Decode(kr.Value); err == nil {
			err = errFound
		}
		return err
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return rec, err
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
