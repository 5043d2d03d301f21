package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A read that waits past the timeout ends with the stall error; a
// connection nobody reads from (a stream held up downstream) stays open.
func TestStalledReadsCloseTheConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c
		}
	}()
	const timeout = 200 * time.Millisecond
	dial := stallDialer(timeout)

	silent, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	defer (<-peers).Close()
	start := time.Now()
	// The deadline only ends the test if the watch fails to.
	silent.SetReadDeadline(start.Add(10 * timeout))
	_, err = silent.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "the link is down or half-open") {
		t.Fatalf("read of a silent peer: %v, want the stall error", err)
	}
	if took := time.Since(start); took < timeout || took > 5*timeout {
		t.Errorf("the stalled read ended after %s, want %s to %s", took, timeout, 5*timeout)
	}

	idle, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	peer := <-peers
	defer peer.Close()
	time.Sleep(3 * timeout) // no read pending: nothing to judge
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := idle.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read after an idle spell with no read pending: %q, %v; want x", b, err)
	}
}
