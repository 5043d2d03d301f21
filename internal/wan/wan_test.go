package wan

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Shape{
		"50ms":                       {RTT: 50 * time.Millisecond, Jitter: 2500 * time.Microsecond},
		"100ms,rate=10MB":            {RTT: 100 * time.Millisecond, Jitter: 5 * time.Millisecond, BytesPerSec: 10_000_000},
		"20ms,jitter=1ms,rate=100KB": {RTT: 20 * time.Millisecond, Jitter: time.Millisecond, BytesPerSec: 100_000},
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "50ms,rate=0MB", "50ms,loss=1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// echo serves lines back until the listener closes.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line and times its echo; an error if none within d.
func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	_, err := r.ReadString('\n')
	return time.Since(start), err
}

// The link adds the round trip asked for, drops everything while
// half-open, refuses connections while cut, and comes back.
func TestLinkShapesCutsAndHalfOpens(t *testing.T) {
	l, err := NewLink("test", "127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Set(Shape{RTT: 40 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if rtt, err := roundTrip(c, r, time.Second); err != nil || rtt < 40*time.Millisecond || rtt > 400*time.Millisecond {
		t.Errorf("round trip through a 40 ms link: %s, %v", rtt, err)
	}
	if err := l.HalfOpen(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, r, 300*time.Millisecond); err == nil {
		t.Errorf("a half-open link carried a round trip")
	}
	l.Heal()
	c.Close()
	l.Cut()
	if c, err := net.DialTimeout("tcp", l.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a cut link accepted a connection")
	}
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	c, err = net.Dial("tcp", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, bufio.NewReader(c), time.Second); err != nil {
		t.Errorf("round trip through the restored link: %v", err)
	}
}
