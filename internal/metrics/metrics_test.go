package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestServeExportsTheCounters(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Serve(ctx, addr, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
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
