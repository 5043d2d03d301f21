package cacheapply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// rebuilder notices that Redis lost its data and rebuilds the cache from a
// consistent snapshot of the standby.
//
// A marker key lives beside the cache; Redis that comes back empty has lost
// it. The rebuild reads, in one snapshot, the standby's checkpoint V and the
// rows of every cached table, and writes each row's keys with version V:
// every change up to V is in the snapshot, every later one has a higher
// version and wins. V is kept in the marker as a floor: records at or below
// it are skipped, so replaying the log after a rebuild never shows an older
// value, not even for a moment.
//
// A standby log started anew (its topic id is not the marker's: Kafka was
// lost, and producer reseed started the logs again) is followed the same
// way: the records of the old one the cache had not read are gone, so the
// cache is rebuilt from the standby, whose checkpoint is of the new epoch
// and so greater than every version the cache holds.
type rebuilder struct {
	cfg   *config.Config
	rules *cacherule.Set
	w     *writer
	log   *slog.Logger
	// floor is the version (schemas.FormatVersion) the cache was last
	// rebuilt at; "" for none.
	floor string
	// topicID is the identity of the topic consumed; the marker remembers
	// the one the cache was built from.
	topicID string
	db      *sql.DB
}

func markerKey(group string) string { return "lockstep:cache:" + group }

// keyLayout names, in the marker, the names version keys have
// (cache.VersionKey); a marker without it is of a cache whose version keys
// were named lockstep:v:<key>.
const keyLayout = "slot-tagged"

// check acts on the marker as read (m; empty when it is gone): the cache is
// rebuilt first if it is gone.
func (b *rebuilder) check(ctx context.Context, m map[string]string) error {
	key := markerKey(b.cfg.Cache.Group)
	var err error
	if len(m) > 0 {
		if b.newTopic(m["topic_id"]) {
			// Noticed while consuming: the next run starts on it (follow).
			return fmt.Errorf("topic %s was deleted and re-created while the cache-applier read it (its id is %s, the cache was built from %s)", b.cfg.CacheTopic(), b.topicID, m["topic_id"])
		}
		if b.floor, err = parseFloor(m["floor"]); err != nil {
			return service.Permanentf("Redis key %s: %w; delete the key to rebuild the cache", key, err)
		}
		if m["layout"] != keyLayout {
			return b.renameVersionKeys(ctx, key)
		}
		return nil
	}
	floor := ""
	if b.cfg.CacheTopic() == b.cfg.Kafka.PrimaryTopic {
		b.log.Warn("Redis holds no lockstep marker (new, or its data was lost); at the primary site there is no standby snapshot to rebuild from, so keys refill as rows change")
	} else {
		b.log.Warn("Redis holds no lockstep marker (new, or its data was lost): rebuilding the cache from a snapshot of the standby")
		if floor, err = b.rebuild(ctx); err != nil {
			return err
		}
	}
	// No floor is written -1, as earlier versions wrote and read it: an
	// instance of one still running in the group (a rolling upgrade) reads
	// it too.
	marked := floor
	if marked == "" {
		marked = "-1"
	}
	if err := b.w.rdb.HSet(ctx, key, "floor", marked, "topic_id", b.topicID, "layout", keyLayout).Err(); err != nil {
		return fmt.Errorf("write the cache marker: %w", err)
	}
	b.floor = floor
	return nil
}

// newTopic reports whether the topic consumed is not the one the cache was
// built from (marked: the id in the marker).
func (b *rebuilder) newTopic(marked string) bool {
	return marked != b.topicID && marked != "" && b.topicID != ""
}

// parseFloor reads the marker's floor: a version, or an offset (-1: none),
// which is epoch 0 (what markers held before versions had epochs).
func parseFloor(s string) (string, error) {
	if strings.HasPrefix(s, "e") {
		var epoch, offset int64
		if _, err := fmt.Sscanf(s, "e%d.%d", &epoch, &offset); err != nil || schemas.FormatVersion(epoch, offset) != s {
			return "", fmt.Errorf("floor %q is not a version", s)
		}
		return s, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return "", fmt.Errorf("floor %q is not a version", s)
	case n < 0:
		return "", nil
	}
	return schemas.FormatVersion(0, n), nil
}

// follow starts the cache on a standby log started anew: the group's
// offsets there are reset to its start, and the marker removed, so that
// check rebuilds the cache from the standby.
func (b *rebuilder) follow(ctx context.Context, opts []kgo.Opt) error {
	key := markerKey(b.cfg.Cache.Group)
	marked, err := b.w.rdb.HGet(ctx, key, "topic_id").Result()
	if errors.Is(err, redis.Nil) || (err == nil && !b.newTopic(marked)) {
		return nil
	}
	if err != nil {
		return classifyRedis(fmt.Errorf("read the cache marker %s in Redis %s: %w", key, b.cfg.Redis.Address, err))
	}
	topic, group := b.cfg.CacheTopic(), b.cfg.Cache.Group
	if topic == b.cfg.Kafka.PrimaryTopic {
		// No standby to rebuild from, and the new log's versions (its
		// offsets, epoch 0) are below those the cache holds.
		return service.Permanentf("topic %s was deleted and re-created (its id is %s; the cache was built from %s), and the new log's offsets are below the versions the cache holds. %s",
			topic, b.topicID, marked, b.byHand(topic))
	}
	b.log.Warn("the standby log is new (Kafka lost, or the topic re-created): its records the cache had not read are gone, so the cache is rebuilt from the standby and the group reads the new log from its start",
		"topic", topic, "topic_id", b.topicID, "cache_built_from", marked, "group", group)
	adm, err := kafka.Admin(opts)
	if err != nil {
		return err
	}
	defer adm.Close()
	bounds, err := kafka.PartitionBounds(ctx, adm, topic)
	if err != nil {
		return err
	}
	start := make(kadm.Offsets)
	for p, bd := range bounds {
		start.Add(kadm.Offset{Topic: topic, Partition: p, At: bd.Start, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, group, start)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return kafka.Classify(fmt.Errorf("reset the offsets of group %s on the new topic %s to its start (is another instance of the group running? every instance does this on start): %w", group, topic, err))
	}
	return b.w.rdb.Del(ctx, key).Err()
}

// byHand says what to do when a cache at the primary site cannot go on
// from its log: there is no standby to rebuild it from.
func (b *rebuilder) byHand(topic string) string {
	group := b.cfg.Cache.Group
	return fmt.Sprintf("At the primary site there is no standby snapshot to rebuild the cache from: delete this cache's keys and the Redis key %s, reset group %s's offsets to the earliest (kafka-consumer-groups --group %s --topic %s --reset-offsets --to-earliest --execute), then start the cache-applier",
		markerKey(group), group, group, topic)
}

// renameVersionKeys gives the version keys of a cache written by an earlier
// lockstep (lockstep:v:<key>, on a single Redis) their names of today,
// tombstones and TTLs kept, then notes the layout in the marker.
func (b *rebuilder) renameVersionKeys(ctx context.Context, marker string) error {
	b.log.Warn("the cache was written by an earlier lockstep, whose version keys were named lockstep:v:<key>: renaming them as cache.VersionKey names them")
	pipe := b.w.rdb.Pipeline()
	renamed := 0
	// A version key that expired since the scan is not renamed: no error.
	flush := func() error {
		cmds, err := pipe.Exec(ctx)
		for _, c := range cmds {
			if e := c.Err(); e != nil && !strings.Contains(e.Error(), "no such key") {
				return e
			}
		}
		if len(cmds) == 0 {
			return err
		}
		return nil
	}
	err := redisconn.Scan(ctx, b.w.rdb, "lockstep:v:*", func(k string) error {
		if now := cache.VersionKey(strings.TrimPrefix(k, "lockstep:v:")); now != k {
			// One the cache-applier wrote since is newer: keep it.
			pipe.RenameNX(ctx, k, now)
			pipe.Del(ctx, k)
			renamed++
		}
		if pipe.Len() < 1000 {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = b.w.rdb.HSet(ctx, marker, "layout", keyLayout).Err()
	}
	if err != nil {
		return classifyRedis(fmt.Errorf("rename the version keys: %w", err))
	}
	b.log.Info("version keys renamed", "keys", renamed)
	return nil
}

// database is the connection to the database the cache follows, opened on
// first use: the standby; the primary for a cache at the primary site.
func (b *rebuilder) database(ctx context.Context) (*sql.DB, error) {
	if b.db == nil {
		name, c := "standby", b.cfg.Standby
		if b.cfg.CacheTopic() == b.cfg.Kafka.PrimaryTopic {
			name, c = "primary", b.cfg.Primary
		}
		db, err := mysql.Open(ctx, name, c)
		if err != nil {
			return nil, err
		}
		b.db = db
	}
	return b.db, nil
}

func (b *rebuilder) close() {
	if b.db != nil {
		b.db.Close()
	}
}

// checkRules holds the cache rules against the database the cache follows
// (the standby; the primary at the primary site), or q (a snapshot of it)
// when not nil: before anything is read, in the snapshot a rebuild reads,
// and after a DDL statement on a cached table.
func (b *rebuilder) checkRules(ctx context.Context, q cacherule.Querier) error {
	if q == nil {
		db, err := b.database(ctx)
		if err != nil {
			return err
		}
		q = db
	}
	misfits, unmatched, err := b.rules.Check(ctx, q)
	// information_schema is not transactional: a table in the middle of an
	// online schema change's swap (RENAME t TO old, new TO t) can look
	// without its columns or indexes for a moment. A misfit must last.
	for try := 0; misfits != nil && err == nil && try < 3; try++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		misfits, unmatched, err = b.rules.Check(ctx, q)
	}
	if err != nil {
		return fmt.Errorf("check the cache rules against the database: %w", err)
	}
	if misfits != nil {
		return service.Permanentf("the cache rules do not fit the database: %w; fix cache.rules and restart", misfits)
	}
	for _, r := range unmatched {
		b.log.Warn("cache rule matches no table yet", "rule", r)
	}
	return nil
}

// rebuild writes every key the refresh rules define from one snapshot of
// the standby, at the snapshot's checkpoint as version, evicts every key of
// a rule that no row of the snapshot explains, and returns that version. Newer writes win over it, so it is safe beside a running
// cache-applier.
func (b *rebuilder) rebuild(ctx context.Context) (string, error) {
	db, err := b.database(ctx)
	if err != nil {
		return "", err
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	// The first read fixes the snapshot; the rows below are read in it.
	applied, err := mysql.Checkpoint(ctx, tx, b.cfg.Applier.Name)
	if err != nil {
		return "", err
	}
	// The rules fit the tables as of the snapshot: its DDL statements are
	// below the floor, and not checked again.
	if err := b.checkRules(ctx, tx); err != nil {
		return "", err
	}
	version := schemas.FormatVersion(applied.Epoch, applied.Offset)
	out := &batch{w: b.w}
	evicted := 0
	for _, r := range b.rules.Rules() {
		keys := make(map[string]bool)
		if r.Refresh() {
			tables, err := r.Tables(ctx, tx, nil)
			if err != nil {
				return "", err
			}
			for _, name := range tables {
				if err := refill(ctx, tx, out, r, name, version, true, keys); err != nil {
					return "", fmt.Errorf("rebuild the cache of %s: %w", name, err)
				}
			}
		}
		// Changes up to the snapshot are skipped from now on, evictions
		// too: a key no row of it explains (a row deleted, an evict rule's
		// key an application filled) goes now.
		n, err := evictUnexplained(ctx, out, r, keys, version, true)
		if err != nil {
			return "", fmt.Errorf("rebuild the cache of %s: %w", r.Table, err)
		}
		evicted += n
	}
	if err := out.flush(ctx); err != nil {
		return "", err
	}
	b.log.Info("cache rebuilt from the standby", "written", out.written-evicted, "evicted", evicted, "version", version)
	return version, nil
}

// refill writes a rule's keys for every row of a table ("db.table") as q
// reads it, at version (snapshot: q is a snapshot taken at version); keys,
// if not nil, collects the keys written.
func refill(ctx context.Context, q cacherule.Querier, out *batch, r *cacherule.Rule, name, version string, snapshot bool, keys map[string]bool) error {
	db, table, _ := strings.Cut(name, ".")
	return cacherule.ScanTable(ctx, q, mysql.QuoteTable(db, table), nil, func(row cacherule.Row) error {
		ks, err := r.Render(row)
		if err != nil {
			return err
		}
		for _, k := range ks {
			if keys != nil {
				keys[k] = true
			}
		}
		ops := rowOps(r, ks, row, version)
		for i := range ops {
			ops[i].snapshot = snapshot
		}
		return out.add(ctx, ops...)
	})
}

// warmCommand writes the cache from the standby database: for a cache that
// lost keys, when the standby log no longer reaches back far enough.
func warmCommand() *cobra.Command {
	return service.Task("warm", "Write every key the cache rules define from a snapshot of the standby (safe while the cache-applier runs)",
		func(ctx context.Context, cfg *config.Config, out, _ io.Writer) error {
			log := service.Logger(cfg.Log, "cache-applier")
			rdb, err := openRedis(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer rdb.Close()
			b := newCacheApplier(cfg, rdb, log, &hooks{}).rebuild
			defer b.close()
			v, err := b.rebuild(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "cache warmed from the standby at version %s (applier %q): every key the rules define written and every key of theirs no row explains evicted, unless Redis holds a newer version\n", v, cfg.Applier.Name)
			return err
		})
}
