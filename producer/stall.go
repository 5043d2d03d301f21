package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// stallTimeout is how long a read of the binlog connection may wait for a
// byte: the primary sends a heartbeat each second on an idle binlog, so ten
// missed mean the link is down or half-open.
const stallTimeout = 10 * time.Second

// stallDialer dials the primary for the binlog stream with connections
// that close themselves when a read has waited longer than timeout. It
// stands in for go-mysql's ReadTimeout, which moves the socket's deadline
// before every packet (8% of the producer's CPU under a backlog): here a
// read costs two atomic stores. It covers the handshake too, and a stream
// held up by Kafka (no read waiting) is left alone, as with the deadline.
func stallDialer(timeout time.Duration) client.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w := &stallConn{Conn: c, timeout: timeout, done: make(chan struct{})}
		go w.watch()
		return w, nil
	}
}

type stallConn struct {
	net.Conn
	timeout time.Duration
	// waiting is when the pending read began (unix nanoseconds); 0 when
	// no read is pending.
	waiting atomic.Int64
	stalled atomic.Bool
	once    sync.Once
	done    chan struct{}
}

func (c *stallConn) Read(b []byte) (int, error) {
	c.waiting.Store(time.Now().UnixNano())
	n, err := c.Conn.Read(b)
	c.waiting.Store(0)
	if err != nil && c.stalled.Load() {
		err = fmt.Errorf("no byte from the primary for %s, though it sends a heartbeat each second: the link is down or half-open", c.timeout)
	}
	return n, err
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// watch closes the connection once a read has waited longer than the
// timeout, which ends that read with an error.
func (c *stallConn) watch() {
	tick := time.NewTicker(c.timeout / 10)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			if since := c.waiting.Load(); since != 0 && now.UnixNano()-since > int64(c.timeout) {
				c.stalled.Store(true)
				c.Close()
				return
			}
		}
	}
}
