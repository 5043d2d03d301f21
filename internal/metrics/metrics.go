// Package metrics holds the Prometheus metrics the services export on
// metrics.listen (GET /metrics), and the server that exports them with
// /healthz and /readyz.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	// Rows counts row records by stage: published (producer), applied and
	// republished (storage-applier), cached (cache-applier, records read).
	Rows = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_rows_total", Help: "Row records handled, by stage.",
	}, []string{"stage"})
	// Transactions counts whole source transactions by stage.
	Transactions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_transactions_total", Help: "Source transactions handled, by stage.",
	}, []string{"stage"})
	// CacheOps counts guarded Redis writes: applied, or skipped as older.
	CacheOps = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_cache_ops_total", Help: "Versioned cache writes, by result.",
	}, []string{"result"})
	// HookCalls counts calls of the application's hooks: ok, failed (each
	// failed attempt), skipped (given up under on_failure=skip).
	HookCalls = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_hook_calls_total", Help: "Calls of the application's cache hooks, by result.",
	}, []string{"result"})
	// Lag is the age of the newest change a stage handled, measured from the
	// primary's commit (binlog time has one-second resolution).
	Lag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_lag_seconds", Help: "Now minus the primary commit time of the last change handled, by stage.",
	}, []string{"stage"})
	// EndToEnd is the distribution of Lag: primary commit to standby commit
	// (applied) and to cache write (cached).
	EndToEnd = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lockstep_end_to_end_seconds", Help: "Primary commit to the stage's own commit (applied: standby, cached: Redis), by stage; binlog time has one-second resolution.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	}, []string{"stage"})
	// Apply times one commit to a target: a standby transaction from its
	// first statement to COMMIT (storage-applier), a batch of Redis writes
	// (cache-applier).
	Apply = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lockstep_apply_seconds", Help: "Time to apply one batch to the target: a standby transaction (applied), a batch of Redis writes (cached).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"stage"})
	// ConsumerLag counts the offsets of an input topic's partition that a
	// consumer has not read yet.
	ConsumerLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_consumer_lag_records", Help: "Offsets of the input topic not read yet, by stage and partition.",
	}, []string{"stage", "partition"})
	// RPOTransactions counts the transactions the primary has committed
	// that a stage (applied: the standby database, cached: the cache) does
	// not hold: what a loss of the primary site now would lose there.
	RPOTransactions = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_rpo_transactions", Help: "Transactions committed on the primary that the stage does not hold yet, by stage (applied, cached); the last value measured.",
	}, []string{"stage"})
	// RPOSeconds is the age of the oldest of them.
	RPOSeconds = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_rpo_seconds", Help: "Age of the oldest transaction committed on the primary that the stage does not hold, by stage; 0 when none; the last value measured.",
	}, []string{"stage"})
	// RPOMeasured says when the two were measured: it stops moving while
	// the primary (or Kafka, or the standby) cannot be read.
	RPOMeasured = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_rpo_measured_timestamp_seconds", Help: "Unix time of the last RPO measurement, by stage; it stops moving while the primary cannot be read.",
	}, []string{"stage"})
	// ConsistencyRatio is the share of the sampled changes the cache held
	// (that change or a later one of its key) a window after the standby
	// committed them, over the last checks of that window.
	ConsistencyRatio = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lockstep_cache_consistency_ratio", Help: fmt.Sprintf("Share of the last %d sampled changes the cache held the given time after their standby commit, by window (cache.sample_rate > 0).", ConsistencyHistory),
	}, []string{"within"})
	// ConsistencyChecks counts the sampler's checks: held, or not yet.
	ConsistencyChecks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_cache_consistency_checks_total", Help: "Sampled changes looked up in the cache, by window after their standby commit and result (held, not yet).",
	}, []string{"within", "result"})
	// CacheAhead counts cached versions the sampler found beyond the
	// standby's applied checkpoint: a cache ahead of its database. 0.
	CacheAhead = promauto.NewCounter(prometheus.CounterOpts{
		Name: "lockstep_cache_ahead_total", Help: "Cached versions the sampler found beyond the standby's applied checkpoint (the cache ahead of the standby database): must stay 0.",
	})
	// BinlogOlder counts the binlogs the primary keeps that are older than
	// the one the producer reads.
	BinlogOlder = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "lockstep_binlog_retention_older_files", Help: "Binlogs the primary keeps that are older than the one the producer reads.",
	})
	// BinlogSecondsLeft is how long until the primary's expiry may purge
	// the binlog the producer reads; +Inf when nothing expires it.
	BinlogSecondsLeft = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "lockstep_binlog_retention_seconds", Help: "Time until binlog_expire_logs_seconds may purge the binlog the producer reads (the expiry less the age of its position); +Inf when none or while it reads the binlog the primary writes.",
	})
	// BinlogBytesLeft is how much more binlog the primary writes before
	// its size limit purges the one the producer reads; +Inf without one.
	BinlogBytesLeft = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "lockstep_binlog_retention_bytes", Help: "Bytes of binlog the primary may write before max_binlog_total_size purges the binlog the producer reads; +Inf when none.",
	})
	// BinlogRisk is 1 while the producer warns that the binlog it reads is
	// about to be purged (within a fifth of the retention), else 0.
	BinlogRisk = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "lockstep_binlog_retention_risk", Help: "1 while the binlog the producer reads is within a fifth of the primary's retention from being purged.",
	})
	// Errors counts stage failures: transient ones restart the stage from
	// its durable position, permanent ones stop the service.
	Errors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "lockstep_errors_total", Help: "Stage failures, by kind: transient (restarted) or permanent (stopped).",
	}, []string{"kind"})
)

// ConsistencyWindows are the times after a change's standby commit at
// which the cache-applier's sampler looks it up in the cache, and
// ConsistencyHistory how many checks of a window its ratio covers.
var ConsistencyWindows = []time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second}

const ConsistencyHistory = 1000

// stage is what /readyz reports: whether the service's stage runs.
var stage struct {
	sync.Mutex
	started bool
	err     error
}

// SetStage records that the stage runs (err nil) or failed and waits to
// restart or has stopped (err says why).
func SetStage(err error) {
	stage.Lock()
	stage.started, stage.err = true, err
	stage.Unlock()
}

// ready answers /readyz: 200 while the stage runs, 503 with the reason
// before it starts and after it failed.
func ready(w http.ResponseWriter, _ *http.Request) {
	stage.Lock()
	started, err := stage.started, stage.err
	stage.Unlock()
	switch {
	case !started:
		http.Error(w, "starting", http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, "not running: "+err.Error(), http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "running")
	}
}

// ObserveLag records a stage's lag from a primary commit time in milliseconds.
func ObserveLag(stage string, commitMS int64) {
	age := time.Since(time.UnixMilli(commitMS)).Seconds()
	Lag.WithLabelValues(stage).Set(age)
	EndToEnd.WithLabelValues(stage).Observe(age)
}

// ObserveConsumerLag records what a fetch says is left of its partitions:
// the high watermark past the last record it returned.
func ObserveConsumerLag(stage string, fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			ConsumerLag.WithLabelValues(stage, strconv.Itoa(int(p.Partition))).Set(float64(p.HighWatermark - p.Records[n-1].Offset - 1))
		}
	})
}

// Serve exports /metrics on addr until ctx ends; an empty addr exports nothing.
func Serve(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen = %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	// Liveness: the process answers. Readiness: its stage runs.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", ready)
	// Profiles, for finding where time and memory go in production.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("metrics", "listen", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return nil
}
