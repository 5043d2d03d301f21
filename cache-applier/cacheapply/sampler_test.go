package cacheapply

import (
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/metrics"
)

// A window's ratio covers its last metrics.ConsistencyHistory checks: older
// outcomes leave it as new ones come.
func TestWindowRatioCoversTheLastChecks(t *testing.T) {
	w := &window{within: time.Second}
	ratio := func() float64 { return float64(w.held) / float64(w.n) }
	w.record(false)
	if w.n != 1 || ratio() != 0 {
		t.Fatalf("after one check not held: %d checks, ratio %v", w.n, ratio())
	}
	for range metrics.ConsistencyHistory {
		w.record(true)
	}
	if w.n != metrics.ConsistencyHistory || ratio() != 1 {
		t.Fatalf("after %d held: %d checks, ratio %v, want the first one gone and 1", metrics.ConsistencyHistory, w.n, ratio())
	}
	for range metrics.ConsistencyHistory / 4 {
		w.record(false)
	}
	if ratio() != 0.75 {
		t.Fatalf("a quarter not held: ratio %v, want 0.75", ratio())
	}
	for range metrics.ConsistencyHistory {
		w.record(false)
	}
	if w.held != 0 || ratio() != 0 {
		t.Fatalf("all not held: %d held, ratio %v", w.held, ratio())
	}
}
