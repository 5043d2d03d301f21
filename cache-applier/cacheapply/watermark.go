package cacheapply

import (
	"context"
	"fmt"
	"strconv"

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
// (on a cluster, to keys spread over the slots) the standby-log offset, per
// partition it owns, below which Redis holds every write. A server executes,
// replicates and persists them after the batch's writes, so a node, a
// snapshot or a file that holds a watermark holds everything below it.
// Before each batch they are read back: one below the committed offset shows
// writes lost, and the standby log is replayed from there through the
// version guard; one this process wrote and that is gone shows a server that
// lost all its data, and the cache is rebuilt from the standby.

// watermarkKeys is how many keys hold watermarks on a cluster, one every
// cache.Slots/watermarkKeys slots: every master of at least that many
// contiguous slots holds one. Resharding moves them with their slots.
const watermarkKeys = 64

type watermarks struct {
	keys []string
	// seen: this process wrote the keys (since the last rebuild).
	seen bool
	// opts reach Kafka, for the replay of lost writes.
	opts []kgo.Opt
}

// newWatermarks are the watermarks of a cache-applier group: one key on a
// single Redis, watermarkKeys on a cluster.
func newWatermarks(group string, opts []kgo.Opt, cluster bool) *watermarks {
	m := &watermarks{opts: opts}
	n := 1
	if cluster {
		n = watermarkKeys
	}
	for i := range n {
		m.keys = append(m.keys, "lockstep:wm:"+group+":{"+cache.SlotTag(i*cache.Slots/watermarkKeys)+"}")
	}
	return m
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
	m.seen = true
	return nil
}

// lost compares the watermarks with the committed offsets of the partitions
// the process owns. from is, per partition, the lowest watermark below its
// committed offset (empty: nothing lost); gone reports a watermark key this
// process wrote that is not there any more.
func (m *watermarks) lost(ctx context.Context, rdb redis.UniversalClient, committed map[int32]int64) (from map[int32]int64, gone bool, err error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(m.keys))
	for i, k := range m.keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("read the cache's watermarks: %w", err)
	}
	from = make(map[int32]int64)
	for _, c := range cmds {
		marks := c.Val()
		if len(marks) == 0 {
			gone = gone || m.seen
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

// offsetsOf are the next offsets to read of topic's partitions, as kgo
// reports them.
func offsetsOf(m map[string]map[int32]kgo.EpochOffset, topic string) map[int32]int64 {
	out := make(map[int32]int64, len(m[topic]))
	for p, o := range m[topic] {
		out[p] = o.Offset
	}
	return out
}
