package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestServeExportsTheCounters(t *testing.T) {
	ctx := context.Background()
	addr := serve(t)
	Rows.WithLabelValues("applied").Add(3)
	resp, err := http.Get("http://" + addr + "/metrics") // listening since Serve returned
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if !strings.Contains(body, `lockstep_rows_total{stage="applied"} 3`) {
		t.Fatalf("metrics page lacks the applied rows:\n%.2000s", body)
	}
	if err := Serve(ctx, "nonsense", slog.Default()); err == nil || !strings.Contains(err.Error(), "metrics.listen = nonsense") {
		t.Fatalf("a bad address must be an error naming the key, got %v", err)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	addr := serve(t)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, c := range []struct {
		set        func()
		path, want string
		code       int
	}{
		{func() {}, "/healthz", "ok", 200},
		{func() {}, "/readyz", "starting", 503},
		{func() { SetStage(nil) }, "/readyz", "running", 200},
		{func() { SetStage(errors.New("connect to standby: refused")) }, "/readyz", "not running: connect to standby: refused", 503},
		{func() {}, "/healthz", "ok", 200},
	} {
		c.set()
		if code, body := get(c.path); code != c.code || body != c.want {
			t.Errorf("%s = %d %q, want %d %q", c.path, code, body, c.code, c.want)
		}
	}
}

// serve starts the metrics server on a free port until the test ends.
func serve(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := Serve(ctx, addr, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return addr
}
