package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// The consistency sampler (cache.sample_rate): of a stream of changes,
// every sampled one is in the cache 10 s after its standby commit, and no
// cached version is ahead of the standby. A version planted beyond the
// standby's checkpoint (what a cache ahead of its database would hold) is
// counted and logged, and status shows both.
func TestConsistencySamplerMeasuresTheCache(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.SampleRate = 100
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	p := caughtUp(t, e, 20)
	writeBatch(t, e, 20, 300)
	metric := func(series string) float64 {
		t.Helper()
		_, body := p.cacheApplier.get("/metrics")
		v, _ := metricValue(body, series)
		return v
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		checks := metric(`lockstep_cache_consistency_checks_total{result="held",within="10s"}`)
		ratio := metric(`lockstep_cache_consistency_ratio{within="10s"}`)
		return checks >= 5 && ratio == 1, fmt.Sprintf("10 s after their standby commit: %v sampled changes held, ratio %v", checks, ratio)
	})
	if ahead := metric("lockstep_cache_ahead_total"); ahead != 0 {
		t.Fatalf("lockstep_cache_ahead_total = %v with a healthy cache", ahead)
	}

	// A version beyond anything the standby applied: the next change of
	// that key is skipped as older, and the sampler finds the key ahead.
	key := e.Cfg.Cache.KeyPrefix + "user:5"
	if err := e.Redis.Set(context.Background(), cache.VersionKey(key), schemas.FormatVersion(9, 0), 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		testenv.Exec(t, e.Primary, fmt.Sprintf("UPDATE %s.users SET balance = balance + 1 WHERE id = 5", e.DB))
		return metric("lockstep_cache_ahead_total") > 0, "the sampler has not found the planted version"
	})
	mustContain(t, p.cacheApplier.logText(), "a cached version is ahead of the standby", key)

	cfg := *e.Cfg
	cfg.Metrics.Listen = p.cacheApplier.metricsAddr()
	out := start(t, writeConfig(t, &cfg), "cache-applier", "status").waitOK(time.Minute)
	t.Logf("cache-applier status:\n%s", out)
	mustContain(t, out, "cache consistency (the cache-applier's sampler, over up to its last 1000 checks a window): sampled changes held 100ms ",
		", 10s 100.0% after their standby commit; cached versions ever ahead of the standby: ")
	if strings.Contains(out, "ever ahead of the standby: 0") {
		t.Fatalf("status does not count the version ahead:\n%s", out)
	}
}

// metricValue is a series' value in a /metrics page.
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
