package cacheapply

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
)

// casScript writes or evicts one key only if the change's version is newer
// than the version the key last saw. The version lives beside the key and
// outlives an eviction as a tombstone, so a replayed or late older change
// can neither overwrite newer data nor undo an eviction. Versions are
// fixed-width decimal strings, so string order is version order.
//
//go:embed cas.lua
var casScript string

var cas = redis.NewScript(casScript)

// Modes of casScript.
const (
	modeHash   = "h"
	modeString = "s"
	modeDelete = "d"
)

// op is one guarded write of one key.
type op struct {
	key     string
	version string // schemas.FormatVersion of the change's position
	mode    string
	ttl     time.Duration
	payload []any // hash field/value pairs, or the one string value
	// snapshot marks a write read from a snapshot of the standby at version:
	// it may replace a write of the same version.
	snapshot bool
}

// writer applies ops to Redis in pipelines of guarded scripts.
type writer struct {
	rdb          redis.UniversalClient
	tombstoneTTL time.Duration
}

// write runs every op of a batch: ops on one key run in the order given. It
// returns how many ops changed a key (the rest were older than what Redis had).
func (w *writer) write(ctx context.Context, ops []op) (applied int, err error) {
	applied, err = w.pipeline(ctx, ops)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// Redis lost its script cache (restart): load and run the batch again;
		// the version guard makes the repeat harmless.
		if err := cas.Load(ctx, w.rdb).Err(); err != nil {
			return 0, classifyRedis(fmt.Errorf("load cache script: %w", err))
		}
		applied, err = w.pipeline(ctx, ops)
	}
	return applied, classifyRedis(err)
}

func (w *writer) pipeline(ctx context.Context, ops []op) (int, error) {
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ops))
	tomb := strconv.FormatInt(int64(w.tombstoneTTL/time.Second), 10)
	for i, o := range ops {
		snapshot := "0"
		if o.snapshot {
			snapshot = "1"
		}
		args := make([]any, 0, 5+len(o.payload))
		args = append(args, o.version, o.mode, strconv.FormatInt(int64(o.ttl/time.Second), 10), tomb, snapshot)
		args = append(args, o.payload...)
		cmds[i] = cas.EvalSha(ctx, pipe, []string{o.key, cache.VersionKey(o.key)}, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("write %d cache keys: %w", len(ops), err)
	}
	applied := 0
	for _, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			applied++
		}
	}
	return applied, nil
}

// batchOps is how many ops a batch sends in one pipeline.
const batchOps = 500

// batch collects ops and writes them in pipelines of batchOps.
type batch struct {
	w   *writer
	ops []op
	// written counts the ops sent so far.
	written int
}

func (b *batch) add(ctx context.Context, ops ...op) error {
	b.ops = append(b.ops, ops...)
	if len(b.ops) >= batchOps {
		return b.flush(ctx)
	}
	return nil
}

func (b *batch) flush(ctx context.Context) error {
	if len(b.ops) == 0 {
		return nil
	}
	_, err := b.w.write(ctx, b.ops)
	b.written += len(b.ops)
	b.ops = b.ops[:0]
	return err
}
