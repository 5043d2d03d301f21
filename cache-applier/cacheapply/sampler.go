package cacheapply

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/schemas"
)

// sampler follows a sample of the changes the cache-applier writes (at
// most cache.sample_rate a second) into the cache: a window after the
// standby committed a change, it reads the version of the change's key and
// counts the change held when the version is the change's or a later one.
// Like Meta's Polaris it samples changes, not keys: a change's commit time
// is known, a key's is not. Each version it reads is also compared with
// the standby's applied checkpoint, read after it: a version beyond it is
// a cache ahead of its database, which lockstep's order of writes excludes
// (lockstep_cache_ahead_total must stay 0). Values are `verify cache`'s to
// compare; a guarded write sets a key and its version together.
type sampler struct {
	rdb     redis.UniversalClient
	standby *sql.DB
	name    string // the storage-applier's checkpoint
	log     *slog.Logger
	every   time.Duration
	next    time.Time
	windows []*window
}

// sample is a change to look up: its key, version and standby commit.
type sample struct {
	key, version string
	committed    time.Time
}

// window checks the samples a fixed time after their commit, in the order
// they came, and keeps the outcomes of its last metrics.ConsistencyHistory checks.
type window struct {
	within time.Duration
	queue  chan sample
	last   [metrics.ConsistencyHistory]bool
	n      int // outcomes in last
	next   int // where the next outcome goes
	held   int // held among them
}

// newSampler starts a sampler for cfg's cache (rate > 0) until ctx ends.
func newSampler(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, log *slog.Logger) (*sampler, error) {
	standby, err := mysql.Open(ctx, "standby", cfg.Standby)
	if err != nil {
		return nil, err
	}
	s := &sampler{rdb: rdb, standby: standby, name: cfg.Applier.Name, log: log,
		every: time.Duration(float64(time.Second) / cfg.Cache.SampleRate)}
	for _, within := range metrics.ConsistencyWindows {
		// Room for what comes in the longest window, and more.
		w := &window{within: within, queue: make(chan sample, 2*int(cfg.Cache.SampleRate*metrics.ConsistencyWindows[len(metrics.ConsistencyWindows)-1].Seconds())+16)}
		s.windows = append(s.windows, w)
		go s.run(ctx, w)
	}
	go func() {
		<-ctx.Done()
		standby.Close()
	}()
	log.Info("sampling the cache's consistency", "changes_per_s", cfg.Cache.SampleRate, "windows", metrics.ConsistencyWindows)
	return s, nil
}

// offer hands the sampler a change the cache-applier writes; it takes one
// when its rate allows and never waits: a window that falls behind drops
// samples rather than slow the cache down.
func (s *sampler) offer(key, version string, committedMS int64) {
	now := time.Now()
	if now.Before(s.next) {
		return
	}
	s.next = now.Add(s.every)
	sm := sample{key: key, version: version, committed: time.UnixMilli(committedMS)}
	for _, w := range s.windows {
		select {
		case w.queue <- sm:
		default:
		}
	}
}

func (s *sampler) run(ctx context.Context, w *window) {
	for {
		var sm sample
		select {
		case <-ctx.Done():
			return
		case sm = <-w.queue:
		}
		if wait := time.Until(sm.committed.Add(w.within)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := s.check(ctx, w, sm); err != nil && ctx.Err() == nil {
			s.log.Debug("consistency sample not judged", "key", sm.key, "err", err)
		}
	}
}

// check looks a sample up in the cache and the version it found against
// the standby's checkpoint. Redis or the standby unreachable: no verdict.
func (s *sampler) check(ctx context.Context, w *window, sm sample) error {
	v, err := s.rdb.Get(ctx, cache.VersionKey(sm.key)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	w.record(err == nil && v >= sm.version)
	if err != nil {
		return nil // no version: not written yet
	}
	cp, err := mysql.Checkpoint(ctx, s.standby, s.name)
	if err != nil {
		return err
	}
	if applied := schemas.FormatVersion(cp.Epoch, cp.Offset); v > applied {
		metrics.CacheAhead.Inc()
		s.log.Error("a cached version is ahead of the standby: the cache holds a change the standby database has not applied", "key", sm.key, "version", v, "standby_applied", applied)
	}
	return nil
}

// record counts one outcome of the window.
func (w *window) record(held bool) {
	label := w.within.String()
	result := "not yet"
	if held {
		result = "held"
	}
	metrics.ConsistencyChecks.WithLabelValues(label, result).Inc()
	if w.n == len(w.last) {
		if w.last[w.next] {
			w.held--
		}
	} else {
		w.n++
	}
	w.last[w.next] = held
	if held {
		w.held++
	}
	w.next = (w.next + 1) % len(w.last)
	metrics.ConsistencyRatio.WithLabelValues(label).Set(float64(w.held) / float64(w.n))
}
