// Package progress shows how far a long command has come (a snapshot, a
// verify): on a terminal a bar redrawn in place, otherwise a plain line
// every few seconds, which reads well in a log file.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Meter counts units done out of an estimated total.
type Meter struct {
	mu    sync.Mutex
	out   io.Writer
	what  string
	unit  string
	total int64 // an estimate; 0 when unknown
	done  int64
	tty   bool
	every time.Duration
	start time.Time
	shown time.Time
	now   func() time.Time
}

// New starts a meter for what (e.g. "snapshot") counting unit ("rows") out
// of about total, writing to out.
func New(out io.Writer, what, unit string, total int64) *Meter {
	m := &Meter{out: out, what: what, unit: unit, total: total, every: 5 * time.Second, now: time.Now}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			m.tty, m.every = true, 200*time.Millisecond
		}
	}
	m.start = m.now()
	m.shown = m.start
	return m
}

// Add counts n more units and shows the progress if it is time to.
func (m *Meter) Add(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done += n
	if now := m.now(); now.Sub(m.shown) >= m.every {
		m.shown = now
		m.show(false)
	}
}

// Done shows the final count and ends the line.
func (m *Meter) Done() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.show(true)
}

func (m *Meter) show(final bool) {
	line := m.Line(final)
	if m.tty {
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(m.out, "\r\033[K%s%s", line, end)
		return
	}
	fmt.Fprintln(m.out, line)
}

// Line renders the progress: done of the estimated total, percent, rate
// and time left; final renders the summary once everything is done.
func (m *Meter) Line(final bool) string {
	elapsed := m.now().Sub(m.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(m.done) / s
	}
	if final {
		return fmt.Sprintf("%s: %d %s in %s (%.0f %s/s)", m.what, m.done, m.unit, elapsed.Round(time.Millisecond), rate, m.unit)
	}
	if m.total <= 0 {
		return fmt.Sprintf("%s: %d %s, %.0f %s/s", m.what, m.done, m.unit, rate, m.unit)
	}
	// The total is an estimate: the count may pass it before the end.
	frac := min(float64(m.done)/float64(m.total), 0.99)
	eta := "?"
	if rate > 0 && m.done < m.total {
		eta = time.Duration(float64(m.total-m.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	bar := ""
	if m.tty {
		const width = 30
		n := int(frac * width)
		bar = "[" + strings.Repeat("=", n) + ">" + strings.Repeat(" ", width-n) + "] "
	}
	return fmt.Sprintf("%s: %s%d of ~%d %s (%.0f%%), %.0f %s/s, ETA %s", m.what, bar, m.done, m.total, m.unit, 100*frac, rate, m.unit, eta)
}
