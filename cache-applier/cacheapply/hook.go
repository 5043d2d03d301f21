package cacheapply

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Change is one change handed to a hook before the cache is touched.
type Change struct {
	// Version is the change's place in primary commit order, the version
	// its cache writes carry (schemas.FormatVersion: its primary log's
	// epoch and offset; compare versions as strings). After a restart a
	// hook may see a change again, with the same version: process each
	// version once.
	Version string
	Record  *schemas.Record
	// Value is the record as the topic holds it (JSON), what the webhook
	// POSTs.
	Value []byte
}

// Hook processes changes before the cache-applier writes them to Redis,
// one at a time, in order for each row. An error is retried, then handled
// as cache.hook.on_failure says.
type Hook interface {
	Handle(ctx context.Context, c Change) error
}

// HookFunc is a function that is a Hook.
type HookFunc func(ctx context.Context, c Change) error

func (f HookFunc) Handle(ctx context.Context, c Change) error { return f(ctx, c) }

// webhook POSTs each change to the application.
type webhook struct {
	url    string
	client *http.Client
}

func (w *webhook) Handle(ctx context.Context, c Change) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(c.Value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lockstep-Version", c.Version)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %q", w.url, resp.Status, body)
	}
	return nil
}

// hooks hands changes to the application's hooks with the retry and
// failure policy of cache.hook.
type hooks struct {
	list []Hook
	cfg  config.Hook
	log  *slog.Logger
}

// newHooks lists the embedding program's hook, then the webhook.
func newHooks(cfg config.Hook, hook Hook, log *slog.Logger) *hooks {
	h := &hooks{cfg: cfg, log: log}
	if hook != nil {
		h.list = append(h.list, hook)
	}
	if cfg.URL != "" {
		h.list = append(h.list, &webhook{url: cfg.URL, client: &http.Client{}})
	}
	return h
}

// hand gives the change to every hook. It returns only once each hook
// succeeded or, under on_failure=skip, gave up; or when ctx ends.
func (h *hooks) hand(ctx context.Context, c Change) error {
	for _, hook := range h.list {
		if err := h.call(ctx, hook, c); err != nil {
			return err
		}
	}
	return nil
}

func (h *hooks) call(ctx context.Context, hook Hook, c Change) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
		err := hook.Handle(cctx, c)
		cancel()
		if err == nil {
			metrics.HookCalls.WithLabelValues("ok").Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		metrics.HookCalls.WithLabelValues("failed").Inc()
		at := []any{"database", c.Record.Database, "table", c.Record.Table, "version", c.Version, "attempt", attempt + 1, "err", err}
		if attempt >= h.cfg.Retries {
			if h.cfg.OnFailure == "skip" {
				metrics.HookCalls.WithLabelValues("skipped").Inc()
				h.log.Error("hook failed; the cache is written without it (cache.hook.on_failure=skip)", at...)
				return nil
			}
			h.log.Error("hook failed; the cache waits for it (cache.hook.on_failure=block)", at...)
		} else {
			h.log.Warn("hook failed; retrying", at...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
