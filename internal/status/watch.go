package status

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// RPO stages: the standby database and the cache.
const (
	RPOApplied = "applied"
	RPOCached  = "cached"
)

// RPOWatcher is WatchRPO for a service to run beside its stage.
func RPOWatcher(stage string) service.Beside {
	return func(ctx context.Context, cfg *config.Config, log *slog.Logger) { WatchRPO(ctx, cfg, stage, log) }
}

// WatchRPO measures a stage's RPO every metrics.rpo_interval and exports it
// as lockstep_rpo_transactions and lockstep_rpo_seconds, until ctx ends.
// While the primary (or Kafka, or the standby) cannot be read, the gauges
// keep the last value measured and lockstep_rpo_measured_timestamp_seconds
// says when that was.
func WatchRPO(ctx context.Context, cfg *config.Config, stage string, log *slog.Logger) {
	if cfg.Metrics.RPOInterval <= 0 {
		return
	}
	w := &watcher{cfg: cfg, stage: stage}
	defer w.close()
	failing := false
	t := time.NewTicker(cfg.Metrics.RPOInterval)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, max(cfg.Metrics.RPOInterval, 10*time.Second))
		rpo, err := w.measure(mctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			log.Warn("RPO not measured: /metrics keeps the last value and lockstep_rpo_measured_timestamp_seconds says when it was measured", "stage", stage, "err", err)
		case err == nil:
			if failing {
				log.Info("RPO measured again", "stage", stage, "rpo", rpo)
			}
			now := time.Now()
			metrics.RPOTransactions.WithLabelValues(stage).Set(float64(rpo.Transactions))
			metrics.RPOSeconds.WithLabelValues(stage).Set(rpo.Age(now).Seconds())
			metrics.RPOMeasured.WithLabelValues(stage).Set(float64(now.UnixMilli()) / 1000)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watcher holds the connections of WatchRPO from one measurement to the
// next; whatever failed to open is opened again at the next.
type watcher struct {
	cfg              *config.Config
	stage            string
	r                *reader
	primary, standby *sql.DB
}

func (w *watcher) measure(ctx context.Context) (RPO, error) {
	var err error
	if w.r == nil {
		if w.r, err = newReader(ctx, w.cfg); err != nil {
			return RPO{}, err
		}
	}
	if w.primary == nil {
		if w.primary, err = mysql.Open(ctx, "primary", w.cfg.Primary); err != nil {
			return RPO{}, err
		}
	}
	if w.stage == RPOCached {
		return w.r.rpoCached(ctx, w.primary)
	}
	if w.standby == nil {
		if w.standby, err = mysql.Open(ctx, "standby", w.cfg.Standby); err != nil {
			return RPO{}, err
		}
	}
	return w.r.rpoApplied(ctx, w.primary, w.standby)
}

func (w *watcher) close() {
	if w.r != nil {
		w.r.close()
	}
	for _, db := range []*sql.DB{w.primary, w.standby} {
		if db != nil {
			db.Close()
		}
	}
}

// lastRPO is what the service at addr last measured of its stage's RPO
// (its /metrics), for a report that cannot reach the primary itself.
func lastRPO(addr, stage string) (string, error) {
	v, err := scrape(addr, "lockstep_rpo_")
	if err != nil {
		return "", err
	}
	label := `{stage="` + stage + `"}`
	at, ok := v["lockstep_rpo_measured_timestamp_seconds"+label]
	if !ok {
		return "", fmt.Errorf("%s/metrics has no RPO of stage %s (metrics.rpo_interval is 0, or no measurement succeeded)", addr, stage)
	}
	when := time.UnixMilli(int64(at * 1000))
	return fmt.Sprintf("%d txn, oldest %s, measured by the service at %s (%s ago)", int64(v["lockstep_rpo_transactions"+label]),
		time.Duration(v["lockstep_rpo_seconds"+label]*float64(time.Second)).Round(time.Millisecond), when.UTC().Format(time.RFC3339), time.Since(when).Round(time.Second)), nil
}

// scrape reads the series named prefix... from a service's /metrics:
// "name{labels}" to value.
func scrape(addr, prefix string) (map[string]float64, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if ok && strings.HasPrefix(series, prefix) {
			if f, err := strconv.ParseFloat(value, 64); err == nil {
				v[series] = f
			}
		}
	}
	return v, sc.Err()
}

// consistency is what the cache-applier at addr's sampler has measured
// (cache.sample_rate), as a line of the report; "" when it has not.
func consistency(addr string) string {
	v, err := scrape(addr, "lockstep_cache_")
	if err != nil {
		return ""
	}
	var held []string
	for _, within := range metrics.ConsistencyWindows {
		w := within.String()
		if r, ok := v[`lockstep_cache_consistency_ratio{within="`+w+`"}`]; ok {
			held = append(held, fmt.Sprintf("%s %.1f%%", w, 100*r))
		}
	}
	if len(held) == 0 {
		return ""
	}
	return fmt.Sprintf("cache consistency (the cache-applier's sampler, over up to its last %d checks a window): sampled changes held %s after their standby commit; cached versions ever ahead of the standby: %d",
		metrics.ConsistencyHistory, strings.Join(held, ", "), int64(v["lockstep_cache_ahead_total"]))
}
