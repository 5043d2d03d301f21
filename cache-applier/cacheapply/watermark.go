package cacheapply

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/cache"
)

// Redis loses writes it acknowledged when a master fails over to a replica
// behind it (Redis Cluster, Sentinel), or restarts from a snapshot or an
// append-only file older than its last writes (a single Redis with RDB
// persistence, AOF fsynced every second), and nothing would bring them back
// until their rows change again. Watermarks find such losses: after every
// batch, before its offsets are committed, the cache-applier writes to a key
// (on a cluster, to keys spread over the slots, and one on each master they
// miss) the standby-log offset, per partition it owns, below which Redis
// holds every write. A server executes, replicates and persists them after
// the batch's writes, so a node, a snapshot or a file that holds a
// watermark holds everything below it.
// Before each batch they are read back: one below the committed offset shows
// writes lost, and the standby log is replayed from there through the
// version guard; one this process wrote and that is gone shows a server that
// lost all its data, and the cache is rebuilt from the standby.

// watermarkKeys is how many keys hold watermarks on a cluster, one every
// spreadStep slots: every master of at least that many contiguous slots
// holds one. Resharding moves them with their slots.
const (
	watermarkKeys = 64
	spreadStep    = cache.Slots / watermarkKeys
)

// refit is how often the watermarks are fitted to a cluster's slots again.
const refit = time.Second

type watermarks struct {
	group string
	// spread: on a cluster, watermarkKeys keys spread over the slots; on a
	// single Redis, the one key.
	spread []string
	// keys: spread, and on a cluster one more on each master that holds
	// none of them (its slots are few, or scattered by resharding), at its
	// lowest slot.
	keys []string
	// written: the keys this process wrote (since the last rebuild).
	written map[string]bool
	// trusted: the keys whose offsets tell writes lost (see refit).
	trusted map[string]bool
	fitted  time.Time
	// opts reach Kafka, for the replay of lost writes.
	opts []kgo.Opt
}

// newWatermarks are the watermarks of a cache-applier group: one key on a
// single Redis, watermarkKeys on a cluster until fit adds those of masters
// they miss.
func newWatermarks(group string, opts []kgo.Opt, cluster bool) *watermarks {
	m := &watermarks{group: group, opts: opts, written: make(map[string]bool), trusted: make(map[string]bool)}
	n := 1
	if cluster {
		n = watermarkKeys
	}
	for i := range n {
		m.spread = append(m.spread, m.key(i*spreadStep))
	}
	m.keys = m.spread
	for _, k := range m.spread {
		m.trusted[k] = true
	}
	return m
}

func (m *watermarks) key(slot int) string {
	return "lockstep:wm:" + m.group + ":{" + cache.SlotTag(slot) + "}"
}

// fit gives every master of a cluster a watermark key, once refit has
// passed since the last time. A key no master needs any more is left as it
// is: deleting it could look, to another cache-applier of the group that
// has not fitted yet, like a master that lost its data.
func (m *watermarks) fit(ctx context.Context, rdb redis.UniversalClient) error {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok || time.Since(m.fitted) < refit {
		return nil
	}
	shards, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return fmt.Errorf("read the slots of the Redis Cluster: %w", err)
	}
	m.refit(shards)
	return nil
}

// refit makes the watermark keys those of shards' masters. The first fit
// trusts every key: what it holds is the group's position before this
// process started, and a loss while none ran shows there. A key that
// joins later holds, if anything, what was written before the slots moved,
// and is trusted once this process has written it.
func (m *watermarks) refit(shards []redis.ClusterSlot) {
	keys := slices.Clone(m.spread)
	for _, slot := range unwatched(shards) {
		keys = append(keys, m.key(slot))
	}
	for _, k := range m.keys {
		if !slices.Contains(keys, k) {
			delete(m.written, k)
			delete(m.trusted, k)
		}
	}
	if m.fitted.IsZero() {
		for _, k := range keys {
			m.trusted[k] = true
		}
	}
	m.keys, m.fitted = keys, time.Now()
}

// unwatched are the lowest slots of the masters that hold no spread key,
// in order.
func unwatched(shards []redis.ClusterSlot) []int {
	lowest := make(map[string]int)
	watched := make(map[string]bool)
	for _, s := range shards {
		if len(s.Nodes) == 0 {
			continue
		}
		master := s.Nodes[0].ID
		if master == "" {
			master = s.Nodes[0].Addr
		}
		if l, ok := lowest[master]; !ok || s.Start < l {
			lowest[master] = s.Start
		}
		if (s.Start+spreadStep-1)/spreadStep*spreadStep <= s.End {
			watched[master] = true
		}
	}
	var slots []int
	for master, slot := range lowest {
		if !watched[master] {
			slots = append(slots, slot)
		}
	}
	slices.Sort(slots)
	return slots
}

// write notes offsets (the next offset to read, per partition) on every
// watermark key. When the writer waits for replicas it waits for these
// too: a replica promoted without them would report writes lost that its
// master's replicas hold.
func (m *watermarks) write(ctx context.Context, w *writer, offsets map[int32]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(offsets))
	for p, o := range offsets {
		fields = append(fields, strconv.Itoa(int(p)), o)
	}
	hset := func(pipe redis.Pipeliner, keys []string) error {
		for _, k := range keys {
			pipe.HSet(ctx, k, fields...)
		}
		wait := w.wait(ctx, pipe)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		return w.waited(wait)
	}
	var err error
	if w.waitReplicas > 0 {
		err = splitByMaster(ctx, w.rdb, m.keys, func(k string) string { return k }, func(c *redis.Client, keys []string) error {
			return hset(c.Pipeline(), keys)
		})
	} else {
		err = hset(w.rdb.Pipeline(), m.keys)
	}
	if err != nil {
		return fmt.Errorf("write the cache's watermarks: %w", err)
	}
	for _, k := range m.keys {
		m.written[k], m.trusted[k] = true, true
	}
	return nil
}

// lost compares the watermarks with the committed offsets of the partitions
// the process owns. from is, per partition, the lowest watermark below its
// committed offset (empty: nothing lost); gone reports a watermark key this
// process wrote that is not there any more. The watermarks are read with
// whatever pipe holds already, in one round trip.
func (m *watermarks) lost(ctx context.Context, rdb redis.UniversalClient, pipe redis.Pipeliner, committed map[int32]int64) (from map[int32]int64, gone bool, err error) {
	if err := m.fit(ctx, rdb); err != nil {
		return nil, false, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(m.keys))
	for i, k := range m.keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("read the cache's watermarks: %w", err)
	}
	from = make(map[int32]int64)
	for i, c := range cmds {
		marks := c.Val()
		if len(marks) == 0 {
			gone = gone || m.written[m.keys[i]]
			continue
		}
		if !m.trusted[m.keys[i]] {
			continue
		}
		for p, end := range committed {
			s, ok := marks[strconv.Itoa(int(p))]
			if !ok {
				continue // the partition was someone else's
			}
			o, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("watermark of partition %d is %q, not an offset", p, s)
			}
			if f, seen := from[p]; o < end && (!seen || o < f) {
				from[p] = o
			}
		}
	}
	return from, gone, nil
}

// forget is called once the cache is rebuilt: the keys written before are
// gone with the rest of Redis's data.
func (m *watermarks) forget() { clear(m.written) }

// offsetsOf are the next offsets to read of topic's partitions, as kgo
// reports them.
func offsetsOf(m map[string]map[int32]kgo.EpochOffset, topic string) map[int32]int64 {
	out := make(map[int32]int64, len(m[topic]))
	for p, o := range m[topic] {
		out[p] = o.Offset
	}
	return out
}
