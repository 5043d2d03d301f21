// Package wan simulates the network between two sites for tests, the
// benchmark and the chaos run: each TCP link that crosses between them goes
// through a toxiproxy proxy in this process, which adds latency with
// jitter, caps the bandwidth, cuts the link or leaves it half-open.
package wan

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

// Shape is what the WAN does to every link: the round trip time, its
// jitter (each way, ±) and the bandwidth each way (0: no cap).
type Shape struct {
	RTT, Jitter time.Duration
	BytesPerSec int64
}

// Parse reads a shape such as "50ms", "50ms,jitter=5ms,rate=10MB".
func Parse(s string) (Shape, error) {
	var sh Shape
	for i, part := range strings.Split(s, ",") {
		k, v, kv := strings.Cut(part, "=")
		var err error
		switch {
		case i == 0 && !kv:
			if sh.RTT, err = time.ParseDuration(k); err == nil {
				sh.Jitter = sh.RTT / 20 // ±10% of the round trip: ±5% each way
			}
		case k == "jitter":
			sh.Jitter, err = time.ParseDuration(v)
		case k == "rate":
			n, unit := strings.TrimRight(v, "KMB"), strings.TrimLeft(v, "0123456789")
			if _, err = fmt.Sscan(n, &sh.BytesPerSec); err == nil {
				sh.BytesPerSec *= map[string]int64{"": 1, "B": 1, "KB": 1000, "MB": 1000 * 1000}[unit]
			}
			if sh.BytesPerSec <= 0 {
				err = fmt.Errorf("want a positive rate such as 10MB, 100KB")
			}
		default:
			err = fmt.Errorf("want RTT[,jitter=D][,rate=NKB|NMB]")
		}
		if err != nil {
			return sh, fmt.Errorf("WAN %q: %s: %w", s, part, err)
		}
	}
	return sh, nil
}

func (s Shape) String() string {
	out := fmt.Sprintf("RTT %s ±%s", s.RTT, s.Jitter)
	if s.BytesPerSec > 0 {
		out += fmt.Sprintf(", %d KB/s", s.BytesPerSec/1000)
	}
	return out
}

// Link is one TCP link between the sites: clients connect to Addr, which
// forwards to the server across the simulated WAN.
type Link struct {
	Name, Addr string
	proxy      *toxiproxy.Proxy
}

// NewLink opens a link to upstream listening on listen ("127.0.0.1:0": a
// loopback port of its own).
func NewLink(name, listen, upstream string) (*Link, error) {
	serverOnce.Do(func() {
		// toxiproxy's toxics log through zerolog's global logger.
		zerolog.SetGlobalLevel(zerolog.Disabled)
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	p := toxiproxy.NewProxy(server, name, listen, upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("WAN link %s to %s: %w", name, upstream, err)
	}
	return &Link{Name: name, Addr: p.Listen, proxy: p}, nil
}

// Set shapes the link: half the round trip each way.
func (l *Link) Set(s Shape) error {
	l.remove("latency", "bandwidth")
	for _, dir := range []string{"upstream", "downstream"} {
		if s.RTT > 0 {
			if err := l.add("latency", dir, map[string]int64{"latency": (s.RTT / 2).Milliseconds(), "jitter": (s.Jitter / 2).Milliseconds()}); err != nil {
				return err
			}
		}
		if s.BytesPerSec > 0 {
			if err := l.add("bandwidth", dir, map[string]int64{"rate": max(s.BytesPerSec/1000, 1)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cut takes the link down: its connections are closed and new ones are
// refused until Restore.
func (l *Link) Cut() { l.proxy.Stop() }

// Restore brings a cut link back on the same address.
func (l *Link) Restore() error {
	if err := l.proxy.Start(); err != nil {
		return fmt.Errorf("restore WAN link %s: %w", l.Name, err)
	}
	return nil
}

// HalfOpen makes the link drop every byte both ways while its connections
// stay open, and new ones are still accepted: a peer that vanished without
// a reset, a firewall that forgot the connection. Heal ends it.
func (l *Link) HalfOpen() error {
	for _, dir := range []string{"upstream", "downstream"} {
		if err := l.add("timeout", dir, map[string]int64{"timeout": 0}); err != nil {
			return err
		}
	}
	return nil
}

// Heal lets bytes through again after HalfOpen (the connections it held
// may be broken by then; the peers find out and reconnect).
func (l *Link) Heal() { l.remove("timeout") }

// Close removes the link.
func (l *Link) Close() { l.proxy.Stop() }

func (l *Link) add(kind, dir string, attrs map[string]int64) error {
	b, _ := json.Marshal(map[string]any{"name": kind + "_" + dir, "type": kind, "stream": dir, "toxicity": 1.0, "attributes": attrs})
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("WAN link %s: %s %s: %w", l.Name, kind, dir, err)
	}
	return nil
}

func (l *Link) remove(kinds ...string) {
	for _, kind := range kinds {
		for _, dir := range []string{"upstream", "downstream"} {
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), kind+"_"+dir) // absent: nothing to remove
		}
	}
}
