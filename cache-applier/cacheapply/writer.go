package cacheapply

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
)

// casScript writes or evicts keys, each only if its change's version is
// newer than the version the key last saw. The version lives beside the
// key and outlives an eviction as a tombstone, so a replayed or late older
// change can neither overwrite newer data nor undo an eviction. Versions
// are fixed-width decimal strings, so string order is version order.
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
	// waitReplicas > 0: each master's pipeline ends in WAIT for that many
	// replicas, at most waitTimeout.
	waitReplicas int
	waitTimeout  time.Duration
}

// write runs the ops of a batch, of several on one key the newest (fold).
// It returns how many ops changed a key (the rest were older than what
// Redis had, or than another op of the batch).
func (w *writer) write(ctx context.Context, ops []op) (applied int, err error) {
	ops = fold(ops)
	for attempt := 0; ; attempt++ {
		if w.waitReplicas > 0 {
			applied, err = w.perMaster(ctx, ops)
		} else {
			applied, err = w.pipeline(ctx, w.rdb.Pipeline(), ops)
		}
		if err == nil || attempt == 2 {
			return applied, classifyRedis(err)
		}
		switch msg := err.Error(); {
		case strings.Contains(msg, "NOSCRIPT"):
			// Redis lost its script cache (restart, failover): load and run
			// the batch again; the version guard makes the repeat harmless.
			if err := cas.Load(ctx, w.rdb).Err(); err != nil {
				return 0, classifyRedis(fmt.Errorf("load cache script: %w", err))
			}
		case strings.Contains(msg, "MOVED ") || strings.Contains(msg, "ASK "):
			// Slots moved under perMaster's pipelines: learn where to.
			if c, ok := w.rdb.(*redis.ClusterClient); ok {
				c.ReloadState(ctx)
			}
		default:
			return applied, classifyRedis(err)
		}
	}
}

// opsPerCall bounds the ops of one script call, and so how long Redis
// runs it.
const opsPerCall = 100

// pipeline sends ops through pipe (ending in WAIT when the writer waits),
// in script calls of up to opsPerCall ops of one slot, and counts those
// applied.
func (w *writer) pipeline(ctx context.Context, pipe redis.Pipeliner, ops []op) (int, error) {
	tomb := strconv.FormatInt(int64(w.tombstoneTTL/time.Second), 10)
	calls := w.calls(ops)
	cmds := make([]*redis.Cmd, len(calls))
	for i, call := range calls {
		keys := make([]string, 0, 2*len(call))
		args := []any{tomb}
		for _, o := range call {
			snapshot := "0"
			if o.snapshot {
				snapshot = "1"
			}
			keys = append(keys, o.key, cache.VersionKey(o.key))
			args = append(args, o.version, o.mode, strconv.FormatInt(int64(o.ttl/time.Second), 10), snapshot, len(o.payload))
			args = append(args, o.payload...)
		}
		cmds[i] = cas.EvalSha(ctx, pipe, keys, args...)
	}
	wait := w.wait(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		// A reply about one key (WRONGTYPE, NOPERM) names the call's keys.
		for i, c := range cmds {
			var re redis.Error
			if errors.As(c.Err(), &re) {
				return 0, fmt.Errorf("write cache keys %s: %w", callKeys(calls[i]), c.Err())
			}
		}
		return 0, fmt.Errorf("write %d cache keys: %w", len(ops), err)
	}
	if err := w.waited(wait); err != nil {
		return 0, fmt.Errorf("write %d cache keys: %w; the batch is written again", len(ops), err)
	}
	applied := 0
	for _, c := range cmds {
		n, _ := c.Int()
		applied += n
	}
	return applied, nil
}

// calls splits ops into script calls: ops in order, up to opsPerCall a
// call, and on a cluster only ops whose keys share a slot in one call.
func (w *writer) calls(ops []op) [][]op {
	if _, cluster := w.rdb.(*redis.ClusterClient); !cluster {
		return slices.Collect(slices.Chunk(ops, opsPerCall))
	}
	var calls [][]op
	open := make(map[int]int) // slot -> its call being filled
	for _, o := range ops {
		slot := cache.Slot(o.key)
		i, ok := open[slot]
		if !ok || len(calls[i]) == opsPerCall {
			i = len(calls)
			open[slot] = i
			calls = append(calls, nil)
		}
		calls[i] = append(calls[i], o)
	}
	return calls
}

// callKeys names the keys of a call, for an error.
func callKeys(call []op) string {
	keys := make([]string, len(call))
	for i, o := range call {
		keys[i] = o.key
	}
	if len(keys) > 3 {
		return strings.Join(keys[:3], ", ") + fmt.Sprintf(" and %d more", len(keys)-3)
	}
	return strings.Join(keys, ", ")
}

// fold keeps, of several ops on one key, the one of the newest version
// (the later of equal ones): the version guard would skip the others.
// Records come from several partitions, so a batch is not in version order.
func fold(ops []op) []op {
	newest := make(map[string]int, len(ops))
	for i, o := range ops {
		if j, ok := newest[o.key]; !ok || ops[j].version <= o.version {
			newest[o.key] = i
		}
	}
	if len(newest) == len(ops) {
		return ops
	}
	out := make([]op, 0, len(newest))
	for i, o := range ops {
		if newest[o.key] == i {
			out = append(out, o)
		}
	}
	return out
}

// wait ends pipe in WAIT when the writer waits for replicas (nil
// otherwise); waited checks its reply.
func (w *writer) wait(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	if w.waitReplicas == 0 {
		return nil
	}
	return pipe.Do(ctx, "WAIT", w.waitReplicas, w.waitTimeout.Milliseconds())
}

func (w *writer) waited(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	if n, _ := wait.Int(); n < w.waitReplicas {
		return fmt.Errorf("%d of the %d replicas cache.wait_replicas asks for hold them after %s (cache.wait_timeout)", n, w.waitReplicas, w.waitTimeout)
	}
	return nil
}

// fewReplicas lists the masters with fewer replicas connected than the
// writer waits for, each with how many it has: WAIT cannot be met on them
// until more connect, and every batch they take is written again until
// then. A master whose INFO is refused is not listed (checkEviction warns
// about it).
func (w *writer) fewReplicas(ctx context.Context) ([]string, error) {
	var mu sync.Mutex
	var few []string
	err := redisconn.EachMaster(ctx, w.rdb, func(ctx context.Context, m *redis.Client) error {
		info, err := m.Info(ctx, "replication").Result()
		if infoRefused(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the replicas of Redis %s: %w", m.Options().Addr, err)
		}
		v, _ := infoValue(info, "connected_slaves")
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("INFO replication of Redis %s: connected_slaves %q", m.Options().Addr, v)
		}
		if n < w.waitReplicas {
			mu.Lock()
			few = append(few, fmt.Sprintf("%s (%d connected)", m.Options().Addr, n))
			mu.Unlock()
		}
		return nil
	})
	slices.Sort(few)
	return few, err
}

// perMaster writes the ops of each master in a pipeline of its own on one
// connection to it, so that the WAIT at its end waits for these writes.
func (w *writer) perMaster(ctx context.Context, ops []op) (int, error) {
	applied := 0
	var mu sync.Mutex
	err := splitByMaster(ctx, w.rdb, ops, func(o op) string { return o.key }, func(m *redis.Client, ops []op) error {
		n, err := w.pipeline(ctx, m.Pipeline(), ops)
		if err != nil {
			err = fmt.Errorf("Redis master %s: %w", m.Options().Addr, err)
		}
		mu.Lock()
		applied += n
		mu.Unlock()
		return err
	})
	return applied, err
}

// splitByMaster groups items by the master of their key and runs fn on each
// master's share, the masters in parallel.
func splitByMaster[T any](ctx context.Context, rdb redis.UniversalClient, items []T, key func(T) string, fn func(*redis.Client, []T) error) error {
	var masters []*redis.Client
	byMaster := make(map[*redis.Client][]T)
	for _, it := range items {
		m, err := redisconn.MasterFor(ctx, rdb, key(it))
		if err != nil {
			return fmt.Errorf("find the master of %s: %w", key(it), err)
		}
		if _, ok := byMaster[m]; !ok {
			masters = append(masters, m)
		}
		byMaster[m] = append(byMaster[m], it)
	}
	errs := make([]error, len(masters))
	var wg sync.WaitGroup
	for i, m := range masters {
		wg.Go(func() { errs[i] = fn(m, byMaster[m]) })
	}
	wg.Wait()
	return errors.Join(errs...)
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
