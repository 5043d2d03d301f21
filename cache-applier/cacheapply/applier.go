// Package cacheapply is the cache-applier: it consumes the standby log
// (changes the standby database has already committed) and refreshes or
// evicts the Redis keys each changed row maps to, with every write guarded
// by the change's version. Programs that embed it hand it a Hook (see Main).
package cacheapply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

// Main runs the cache-applier command, with its flags and config, handing
// every change to hook (nil for none) before the cache is touched. A
// program embedding the cache-applier calls it from its main.
func Main(hook Hook) { service.Main(Command(hook)) }

// Command is the cache-applier command, for callers that run it themselves.
func Command(hook Hook) *cobra.Command {
	cmd := service.Command("cache-applier", "Refresh or evict Redis keys from the standby log",
		func(ctx context.Context, cfg *config.Config, log *slog.Logger) error { return run(ctx, cfg, log, hook) },
		status.RPOWatcher(status.RPOCached))
	cmd.AddCommand(status.Command(), status.HealthCommand("cache-applier"), verify.Command(), warmCommand(), replayCommand())
	return cmd
}

// openRedis connects to the configured Redis, checks that it keeps the
// version keys (checkEviction) and loads the write script (into every
// master of a cluster).
func openRedis(ctx context.Context, cfg *config.Config, log *slog.Logger) (redis.UniversalClient, error) {
	rdb, err := redisconn.Open(ctx, cfg.Redis)
	if err != nil {
		return nil, classifyRedis(err)
	}
	if err := checkEviction(ctx, rdb, cfg.Cache.AllowEviction, log); err != nil {
		rdb.Close()
		return nil, classifyRedis(err)
	}
	if err := cas.Load(ctx, rdb).Err(); err != nil {
		rdb.Close()
		return nil, classifyRedis(fmt.Errorf("load cache script into Redis: %w", err))
	}
	return rdb, nil
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger, hook Hook) error {
	rdb, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts, err := kafka.Connect(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	topic := cfg.CacheTopic()
	a := newCacheApplier(cfg, rdb, log, newHooks(cfg.Cache.Hook, hook, log))
	a.marks = newWatermarks(cfg.Cache.Group, opts, cfg.Redis.Cluster)
	a.evictionChecked = time.Now() // by openRedis
	if cfg.Cache.WaitReplicas > 0 {
		few, err := a.w.fewReplicas(ctx)
		if err != nil {
			return classifyRedis(err)
		}
		if len(few) > 0 {
			log.Warn("Redis masters have fewer replicas connected than cache.wait_replicas asks for: no batch they take is committed until more connect; check their replicas, or lower cache.wait_replicas",
				"masters", strings.Join(few, ", "), "wait_replicas", cfg.Cache.WaitReplicas)
		}
	}
	defer a.rebuild.close()
	if err := a.rebuild.checkRules(ctx, nil); err != nil {
		return err
	}
	if cfg.Cache.SampleRate > 0 {
		if a.primaryTopic {
			log.Warn("cache.sample_rate is set, but the sampler measures from the standby's commit: a cache fed from the primary log is not sampled")
		} else {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if a.sampler, err = newSampler(sctx, cfg, rdb, log); err != nil {
				return err
			}
		}
	}
	info, err := waitForTopic(ctx, opts, topic, log)
	if err != nil || ctx.Err() != nil {
		return err
	}
	a.rebuild.topicID = info.ID
	if err := a.rebuild.follow(ctx, opts); err != nil {
		return err
	}
	// Instances of one group share the topic's partitions; which one holds
	// which is worth a line when it changes.
	moved := func(what string) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.Info(what, "topic", topic, "partitions", m[topic])
		}
	}
	group := []kgo.Opt{kgo.ConsumerGroup(cfg.Cache.Group), kgo.SessionTimeout(cfg.Cache.SessionTimeout),
		kgo.OnPartitionsAssigned(moved("partitions assigned")), kgo.OnPartitionsRevoked(moved("partitions revoked")),
		kgo.OnPartitionsLost(moved("partitions lost"))}
	if cfg.Cache.InstanceID != "" {
		group = append(group, kgo.InstanceID(cfg.Cache.InstanceID))
	}
	cl, err := kgo.NewClient(append(append(opts, group...),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Offsets are committed only after the batch is in Redis, and no
		// rebalance happens between the two.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// A new group starts at the beginning; a committed offset beyond the
		// end (the topic went back) is an error, never a silent jump.
		kgo.ConsumeResetOffset(kgo.NoResetOffset().AtStart()),
		kafka.WarnUnanswered(log),
	)...)
	if err != nil {
		return service.Permanent(err)
	}
	defer cl.Close()
	log.Info("consuming", "topic", topic, "group", cfg.Cache.Group, "redis", cfg.Redis.Address, "rules", len(cfg.Cache.Rules))
	for {
		if err := a.step(ctx, cl, topic); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// pollRecords bounds a batch: its memory, and how far apart the batch's
// fixed costs come (the last write waited for, the watermarks and the
// marker read from Redis, the offsets committed): at 2,000 they cost the
// cache-applier about a fifth of its rate on a Redis Cluster (see README,
// Performance).
const pollRecords = 8000

// step polls one batch, writes it to Redis, then commits its offsets. The
// group cannot rebalance between poll and commit, so no other instance
// gets these partitions with uncommitted writes in flight.
func (a *cacheApplier) step(ctx context.Context, cl *kgo.Client, topic string) error {
	// Poll at most a second, so an idle applier still looks at Redis, and
	// at most pollRecords, which bounds the memory of a batch.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	fs := cl.PollRecords(pctx, pollRecords)
	cancel()
	defer cl.AllowRebalance()
	if ctx.Err() != nil {
		return nil
	}
	if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// kgo resets a partition whose log went back and reports it; we
		// stop before reading anything past the reset.
		var lost *kgo.ErrDataLoss
		if errors.As(err, &lost) || errors.Is(err, kerr.OffsetOutOfRange) {
			if err := a.recreated(ctx, cl, topic); err != nil {
				return err
			}
		}
		if errors.As(err, &lost) {
			return service.Permanentf("topic %s went back below the committed position of group %s (partition %d: consumed to offset %d, the topic now starts over at %d): it was truncated or re-created. Nothing was applied; reset the group's offsets and delete the Redis key %s to rebuild the cache",
				topic, a.rebuild.cfg.Cache.Group, lost.Partition, lost.ConsumedTo, lost.ResetTo, markerKey(a.rebuild.cfg.Cache.Group))
		}
		if errors.Is(err, kerr.OffsetOutOfRange) {
			return a.outOfRange(ctx, cl, topic)
		}
		return kafka.Classify(fmt.Errorf("read %s: %w", topic, err))
	}
	// Once per batch: has Redis lost writes, or all its data, since the
	// last one?
	marker, err := a.repairLost(ctx, cl, topic)
	if err != nil {
		return classifyRedis(err)
	}
	if err := a.rebuild.check(ctx, marker); err != nil {
		return classifyRedis(err)
	}
	if err := a.recheckEviction(ctx); err != nil {
		return classifyRedis(err)
	}
	metrics.ObserveConsumerLag("cached", fs)
	if err := a.apply(ctx, fs.Records()); err != nil {
		return classifyRedis(err)
	}
	// An idle poll moved nothing: the watermarks stand.
	if moved := offsetsOf(cl.UncommittedOffsets(), topic); len(moved) > 0 {
		offsets := offsetsOf(cl.CommittedOffsets(), topic)
		maps.Copy(offsets, moved)
		if err := a.marks.write(ctx, a.w, offsets); err != nil {
			return classifyRedis(err)
		}
	}
	crashpoint.Hit(crashpoint.CacheWritten)
	return cl.CommitUncommittedOffsets(ctx)
}

// repairLost compares the watermarks with the committed offsets (see
// watermarks): writes Redis lost are written again from the standby log; a
// Redis (or a master of a cluster) that lost all its data has the cache
// rebuilt from the standby (by rebuild.check, next). It returns the marker,
// read in the same round trip as the watermarks, or nil once it deleted it.
func (a *cacheApplier) repairLost(ctx context.Context, cl *kgo.Client, topic string) (map[string]string, error) {
	committed := offsetsOf(cl.CommittedOffsets(), topic)
	key := markerKey(a.rebuild.cfg.Cache.Group)
	pipe := a.w.rdb.Pipeline()
	marker := pipe.HGetAll(ctx, key)
	from, gone, err := a.marks.lost(ctx, a.w.rdb, pipe, committed)
	if err != nil {
		return nil, err
	}
	switch {
	case gone:
		a.log.Warn("Redis lost its data, or a master of it did (a watermark of the cache is gone): the cache is rebuilt from the standby")
	case len(from) == 0:
		return marker.Val(), nil
	default:
		// Writes the log no longer holds are rebuilt from the standby,
		// which does: a replay could only fail, batch after batch.
		if gone, err = a.deletedFrom(ctx, cl, topic, from); err != nil {
			return nil, err
		}
	}
	if gone {
		a.marks.forget()
		return nil, a.w.rdb.Del(ctx, key).Err()
	}
	// The application saw these changes already: no hooks.
	r := newCacheApplier(a.rebuild.cfg, a.w.rdb, a.log, &hooks{})
	defer r.rebuild.close()
	r.rebuild.floor = a.rebuild.floor
	for p, f := range from {
		a.log.Warn("Redis lost writes it had acknowledged, or may have (a watermark is behind the committed offset: Redis restarted from older data, or a master failed over to a replica behind it): writing them again from the standby log",
			"topic", topic, "partition", p, "from_offset", f, "to_offset", committed[p])
		if err := r.replay(ctx, a.marks.opts, topic, p, f, committed[p]); err != nil {
			return nil, err
		}
	}
	metrics.CacheOps.WithLabelValues("written again after a Redis failover").Add(float64(r.applied))
	return marker.Val(), a.marks.write(ctx, a.w, committed)
}

// deletedFrom reports whether retention deleted the start of a range to
// write again (from: its first offset per partition); it asks the broker
// through the group's own client.
func (a *cacheApplier) deletedFrom(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64) (bool, error) {
	bounds, err := kafka.PartitionBounds(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return false, kafka.Classify(err)
	}
	for p, f := range from {
		b, ok := bounds[p]
		if !ok || f >= b.Start {
			continue
		}
		if topic == a.rebuild.cfg.Kafka.PrimaryTopic {
			return false, service.Permanentf("Redis lost writes it had acknowledged, and topic %s no longer holds them all (partition %d: lost from offset %d, the topic starts at %d): retention deleted them. %s",
				topic, p, f, b.Start, a.rebuild.byHand(topic))
		}
		a.log.Warn("Redis lost writes it had acknowledged, and the standby log no longer holds them all (retention deleted its records below the log's start): the cache is rebuilt from the standby",
			"topic", topic, "partition", p, "lost_from_offset", f, "log_start", b.Start)
		return true, nil
	}
	return false, nil
}

// evictionRecheck is how often a running cache-applier checks again that
// Redis keeps its keys: CONFIG SET can turn eviction on at any time.
const evictionRecheck = time.Minute

// recheckEviction repeats openRedis's checkEviction once evictionRecheck
// has passed, unless cache.allow_eviction; what it warns of, it warned of
// at the start.
func (a *cacheApplier) recheckEviction(ctx context.Context) error {
	if a.rebuild.cfg.Cache.AllowEviction || time.Since(a.evictionChecked) < evictionRecheck {
		return nil
	}
	if err := checkEviction(ctx, a.w.rdb, false, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	a.evictionChecked = time.Now()
	return nil
}

// newCacheApplier is the cache-applier of a config over a Redis client:
// its rules, its writer, its rebuilder (no floor until it reads the
// marker) and the hooks it hands changes to.
func newCacheApplier(cfg *config.Config, rdb redis.UniversalClient, log *slog.Logger, hooks *hooks) *cacheApplier {
	rules := cacherule.Compile(cfg.Cache, cfg.Primary.Databases)
	w := &writer{rdb: rdb, tombstoneTTL: cfg.Cache.TombstoneTTL, waitReplicas: cfg.Cache.WaitReplicas, waitTimeout: cfg.Cache.WaitTimeout}
	return &cacheApplier{rules: rules, w: w, log: log, primaryTopic: cfg.CacheTopic() == cfg.Kafka.PrimaryTopic, hooks: hooks,
		rebuild: &rebuilder{cfg: cfg, rules: rules, w: w, log: log}}
}

// cacheApplier turns a batch of records into guarded Redis writes.
type cacheApplier struct {
	rules *cacherule.Set
	w     *writer
	log   *slog.Logger
	// primaryTopic: at the primary site, versions are the record's own offsets.
	primaryTopic bool
	rebuild      *rebuilder
	hooks        *hooks
	// applied and skipped count the cache ops written and those older than
	// what Redis held (or than another op of their batch).
	applied, skipped int
	// inFlight is the write Redis runs while apply decodes on.
	inFlight *writing
	// marks finds writes Redis lost; set by run, whose loop alone steps.
	marks *watermarks
	// evictionChecked is when checkEviction last found Redis keeping keys.
	evictionChecked time.Time
	// sampler follows some changes into the cache; nil when off.
	sampler *sampler
}

func (a *cacheApplier) apply(ctx context.Context, recs []*kgo.Record) (err error) {
	// No write outlives the batch, whatever ends it.
	defer func() {
		if serr := a.settle(); err == nil {
			err = serr
		}
	}()
	var ops []op
	metrics.Rows.WithLabelValues("cached").Add(float64(len(recs)))
	dec := decodeAhead(recs)
	defer dec.close()
	for i, kr := range recs {
		r, err := dec.record(i)
		if err != nil {
			return service.Permanentf("record at %s[%d] offset %d: %w", kr.Topic, kr.Partition, kr.Offset, err)
		}
		if i == len(recs)-1 {
			metrics.ObserveLag("cached", r.Source.CommitTimeMS)
		}
		if r.Op == schemas.OpPosition {
			continue
		}
		// The version is the change's place in primary commit order: its
		// primary log's epoch and offset, which the standby log carries.
		var epoch, pos int64 = 0, kr.Offset
		if !a.primaryTopic {
			if r.Standby == nil {
				return service.Permanentf("record at %s[%d] offset %d has no standby section: is cache.topic the primary log?", kr.Topic, kr.Partition, kr.Offset)
			}
			epoch, pos = r.Standby.Epoch, r.Standby.PrimaryOffset
		}
		version := schemas.FormatVersion(epoch, pos)
		// The application first: the batch's cache writes come after. It
		// sees every change, also those a rebuilt cache already holds.
		if err := a.hooks.hand(ctx, Change{Version: version, Record: r, Value: kr.Value}); err != nil {
			return err
		}
		if version <= a.rebuild.floor {
			continue // in the snapshot the cache was rebuilt from
		}
		if r.Op == schemas.OpDDL {
			// what came before the statement first
			a.writeBehind(ctx, ops)
			ops = nil
			if err := a.settle(); err != nil {
				return err
			}
			if err := a.afterDDL(ctx, r, version); err != nil {
				return err
			}
			continue
		}
		planned := len(ops)
		for _, rule := range a.rules.Match(r.Database, r.Table) {
			o, err := plan(rule, r, version)
			if err != nil {
				return service.Permanentf("record at %s[%d] offset %d: %w", kr.Topic, kr.Partition, kr.Offset, err)
			}
			ops = append(ops, o...)
		}
		if a.sampler != nil && len(ops) > planned {
			a.sampler.offer(ops[planned].key, version, r.Standby.CommitTimeMS)
		}
		if len(ops) >= batchOps {
			// Redis writes these while the next records are decoded.
			if err := a.settle(); err != nil {
				return err
			}
			a.writeBehind(ctx, ops)
			ops = nil
		}
	}
	if err := a.settle(); err != nil {
		return err
	}
	a.writeBehind(ctx, ops)
	return nil
}

// writing is a write of ops running while the next records are decoded.
type writing struct {
	done  chan struct{}
	ops   int
	n     int
	err   error
	start time.Time
}

// writeBehind starts writing ops; one write runs at a time (settle first).
func (a *cacheApplier) writeBehind(ctx context.Context, ops []op) {
	if len(ops) == 0 {
		return
	}
	wr := &writing{done: make(chan struct{}), ops: len(ops), start: time.Now()}
	a.inFlight = wr
	go func() {
		defer close(wr.done)
		wr.n, wr.err = a.w.write(ctx, ops)
	}()
}

// settle waits for the write in flight, if any, and counts it.
func (a *cacheApplier) settle() error {
	wr := a.inFlight
	if wr == nil {
		return nil
	}
	<-wr.done
	a.inFlight = nil
	if wr.err != nil {
		return wr.err
	}
	metrics.Apply.WithLabelValues("cached").Observe(time.Since(wr.start).Seconds())
	metrics.CacheOps.WithLabelValues("applied").Add(float64(wr.n))
	metrics.CacheOps.WithLabelValues("older, skipped").Add(float64(wr.ops - wr.n))
	a.applied, a.skipped = a.applied+wr.n, a.skipped+wr.ops-wr.n
	a.log.Debug("cache written", "ops", wr.ops, "applied", wr.n)
	return nil
}

// waitForTopic waits until the topic exists (the storage-applier creates
// the standby log) and describes it.
func waitForTopic(ctx context.Context, opts []kgo.Opt, topic string, log *slog.Logger) (kafka.Topic, error) {
	// Metadata younger than 5 s (kgo's default) would hide a topic created
	// meanwhile for that long, and delay the first changes as much.
	adm, err := kafka.Admin(opts, kgo.MetadataMinAge(200*time.Millisecond))
	if err != nil {
		return kafka.Topic{}, err
	}
	defer adm.Close()
	for logged := false; ; logged = true {
		t, ok, err := kafka.Describe(ctx, adm, topic)
		if err != nil || ok {
			return t, err
		}
		if !logged {
			log.Info("waiting for the topic to exist", "topic", topic)
		}
		select {
		case <-ctx.Done():
			return kafka.Topic{}, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recreated is an error (not permanent: the next run follows the new
// topic, see rebuilder.follow) when topic is not the one this run started
// on: Kafka lost it and it was created again.
func (a *cacheApplier) recreated(ctx context.Context, cl *kgo.Client, topic string) error {
	info, ok, err := kafka.Describe(ctx, kadm.NewClient(cl), topic)
	if err != nil || !ok || info.ID == a.rebuild.topicID {
		return err
	}
	return fmt.Errorf("topic %s was re-created (its id is %s, this run started on %s): starting on the new one", topic, info.ID, a.rebuild.topicID)
}

// outOfRange answers a committed position outside the topic. Beyond its
// end, the topic went back (truncated or re-created): an error, nothing
// applied. Below its start, retention deleted records the group had not
// read: the cache is rebuilt from the standby, which holds their changes,
// and the group goes on from the start; the marker goes first, so that a
// crash before the offsets move cannot skip the records unrebuilt.
func (a *cacheApplier) outOfRange(ctx context.Context, cl *kgo.Client, topic string) error {
	adm := kadm.NewClient(cl)
	group := a.rebuild.cfg.Cache.Group
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return kafka.Classify(fmt.Errorf("read the offsets of group %s: %w", group, err))
	}
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return kafka.Classify(err)
	}
	var beyond, below []string
	start := make(map[string]map[int32]kgo.EpochOffset)
	committed.Each(func(o kadm.OffsetResponse) {
		b, ok := bounds[o.Partition]
		switch {
		case !ok || o.At < 0:
		case o.At > b.End:
			beyond = append(beyond, fmt.Sprintf("partition %d: committed offset %d, topic ends at %d", o.Partition, o.At, b.End))
		case o.At < b.Start:
			below = append(below, fmt.Sprintf("partition %d: committed offset %d, topic starts at %d", o.Partition, o.At, b.Start))
			if start[topic] == nil {
				start[topic] = make(map[int32]kgo.EpochOffset)
			}
			start[topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: b.Start}
		}
	})
	switch {
	case len(beyond) > 0:
		return service.Permanentf("topic %s went back below the committed position of group %s (%s): it was truncated or re-created. Nothing was applied; reset the group's offsets and delete the Redis key %s to rebuild the cache",
			topic, group, strings.Join(beyond, "; "), markerKey(group))
	case len(below) == 0:
		return fmt.Errorf("topic %s: an offset of group %s was out of range, and no longer is", topic, group)
	case topic == a.rebuild.cfg.Kafka.PrimaryTopic:
		return service.Permanentf("topic %s no longer holds records group %s has not read (%s): retention deleted them. %s",
			topic, group, strings.Join(below, "; "), a.rebuild.byHand(topic))
	}
	a.log.Warn("retention deleted records of the standby log the cache had not read (the cache-applier was stopped or behind for longer than the topic keeps records): the cache is rebuilt from the standby, and the group goes on from the log's start",
		"topic", topic, "group", group, "partitions", strings.Join(below, "; "))
	if err := a.w.rdb.Del(ctx, markerKey(group)).Err(); err != nil {
		return classifyRedis(fmt.Errorf("delete the cache marker: %w", err))
	}
	// Once rebuilt, Redis holds everything below the start: the
	// watermarks say so, or they would read as writes Redis lost.
	if err := a.marks.write(ctx, a.w, offsetsOf(start, topic)); err != nil {
		return classifyRedis(err)
	}
	var commitErr error
	cl.CommitOffsetsSync(ctx, start, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if commitErr = err; err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					commitErr = cmp.Or(commitErr, kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
	})
	if commitErr != nil {
		return kafka.Classify(fmt.Errorf("move group %s to the start of %s: %w", group, topic, commitErr))
	}
	// The next run reads from there, and rebuilds first (no marker).
	return fmt.Errorf("topic %s: group %s moved to the log's start; the cache is rebuilt before it reads on", topic, group)
}
