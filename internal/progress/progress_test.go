package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clock is a meter's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestMeter(total int64) (*Meter, *bytes.Buffer, *clock) {
	var out bytes.Buffer
	c := &clock{t: time.Unix(1000, 0)}
	m := New(&out, "snapshot", "rows", total)
	m.now, m.start, m.shown = c.now, c.t, c.t
	return m, &out, c
}

func TestLineShowsRateAndTimeLeft(t *testing.T) {
	m, out, c := newTestMeter(1000)
	c.t = c.t.Add(2 * time.Second)
	m.Add(250) // not yet 5 s since the last line: nothing shown
	if out.Len() != 0 {
		t.Fatalf("shown too early: %q", out.String())
	}
	c.t = c.t.Add(3 * time.Second)
	m.Add(250)
	want := "snapshot: 500 of ~1000 rows (50%), 100 rows/s, ETA 5s\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestEstimatePassedStaysBelowFull(t *testing.T) {
	m, _, c := newTestMeter(100)
	c.t = c.t.Add(time.Second)
	m.Add(150)
	if got := m.Line(false); !strings.Contains(got, "150 of ~100 rows (99%)") || !strings.Contains(got, "ETA ?") {
		t.Fatalf("line %q: want 99%% and an unknown ETA once the estimate is passed", got)
	}
	m.Done()
	if got := m.Line(true); got != "snapshot: 150 rows in 1s (150 rows/s)" {
		t.Fatalf("final line %q", got)
	}
}

func TestUnknownTotal(t *testing.T) {
	m, _, c := newTestMeter(0)
	c.t = c.t.Add(4 * time.Second)
	m.Add(40)
	if got := m.Line(false); got != "snapshot: 40 rows, 10 rows/s" {
		t.Fatalf("line %q", got)
	}
}
