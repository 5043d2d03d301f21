package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// waitExit waits for a service to stop by itself and returns its log.
func (p *proc) waitExit(within time.Duration) string {
	p.t.Helper()
	return p.finish(within, false)
}

// waitOK waits for a one-shot command to succeed and returns its output.
func (p *proc) waitOK(within time.Duration) string {
	p.t.Helper()
	return p.finish(within, true)
}

// finish waits for the process to end, fails the test unless it ended as
// wantOK says, and returns its log.
func (p *proc) finish(within time.Duration, wantOK bool) string {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s still runs after %s; it should have ended", p.name, within)
	}
	b := p.logText()
	if (p.err == nil) != wantOK {
		p.t.Fatalf("%s exited with %v, want success %v:\n%s", p.name, p.err, wantOK, b[max(0, len(b)-4000):])
	}
	return b
}

func mustContain(t *testing.T, log string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q", w)
		}
	}
}

// Two storage-appliers on one standby: one applies, the other waits; when
// the active one is killed the spare takes over, and nothing is applied twice.
func TestHotSpareTakesOver(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	// The first applier holds the standby's lock before the spare starts.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var holder sql.NullInt64
		err := e.Standby.QueryRow("SELECT IS_USED_LOCK(?)", mysql.ApplierLock(e.Cfg.Applier.Name)).Scan(&holder)
		return err == nil && holder.Valid, fmt.Sprintf("no storage-applier holds the standby's lock (%v)", err)
	})
	spare := start(t, p.cfgPath, "storage-applier")
	spare.waitLog("standing by as hot spare")

	writeBatch(t, e, 0, 100)
	p.applier.stop(syscall.SIGKILL)
	killed := time.Now()
	writeBatch(t, e, 100, 100)
	spare.waitLog("took over as the active storage-applier")
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("the spare took %s to take over", d)
	}
	consistent(t, e, 60*time.Second)
	assertExactlyOnce(t, e)
}

// A primary log deleted and re-created under the same name: the applier
// refuses it, names the topic, and applies nothing.
func TestRecreatedTopicStopsTheApplier(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 20)
	p.producer.stopTailing(e.Primary, e.Cfg.Producer.ServerID)
	p.applier.stop(syscall.SIGTERM)

	deleteTopic(t, e, e.Cfg.Kafka.PrimaryTopic)
	// The producer finds an empty topic and starts a new stream.
	p.producer = start(t, p.cfgPath, "producer")
	p.producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	writeBatch(t, e, 20, 50)
	before := testenv.Count(t, e.Standby, e.DB+".items")

	applier := start(t, p.cfgPath, "storage-applier")
	mustContain(t, applier.waitExit(30*time.Second), e.Cfg.Kafka.PrimaryTopic, "was deleted and re-created", "Nothing was applied")
	if after := testenv.Count(t, e.Standby, e.DB+".items"); after != before {
		t.Fatalf("standby items went from %d to %d after the topic was re-created", before, after)
	}
}

// The binlog the producer needs was purged while it was down: it stops and
// says which GTID it needed; it never skips ahead.
func TestPurgedBinlogStopsTheProducer(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 10)
	p.producer.stop(syscall.SIGTERM)
	writeBatch(t, e, 10, 10) // changes the producer has not published
	testenv.Exec(t, e.Primary, "FLUSH BINARY LOGS")
	var file string
	if err := e.Primary.QueryRow("SELECT SUBSTRING_INDEX(@@log_bin_basename, '/', -1)").Scan(&file); err != nil {
		t.Fatal(err)
	}
	rows, err := e.Primary.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns() // MySQL adds Encrypted
	for rows.Next() {         // the last one listed is the current binlog
		rest := make([]any, len(cols))
		rest[0] = &file
		for i := 1; i < len(cols); i++ {
			rest[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(rest...); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	// The server keeps a binlog that a dump thread still reads (the stopped
	// producer's thread lingers until the server notices, so end it) or that
	// crash recovery may still need (until its binlog checkpoint): retry.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		killDumpThreads(t, e.Primary)
		testenv.Exec(t, e.Primary, fmt.Sprintf("PURGE BINARY LOGS TO '%s'", file))
		n := binlogCount(t, e.Primary)
		return n == 1, fmt.Sprintf("after PURGE the primary still has %d binlogs", n)
	})

	producer := start(t, p.cfgPath, "producer")
	mustContain(t, producer.waitExit(30*time.Second), "cannot send its binlog from GTID ", "was probably purged", "re-bootstrap")
	if n := testenv.Count(t, e.Standby, e.DB+".items"); n != 10 {
		t.Fatalf("standby has %d items, want the 10 published before the purge", n)
	}
}

func killDumpThreads(t *testing.T, db *sql.DB) {
	rows, err := db.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		_, _ = db.Exec(fmt.Sprintf("KILL %d", id)) // may have ended meanwhile
	}
}

func binlogCount(t *testing.T, db *sql.DB) int {
	rows, err := db.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n
}

// The broker restarts (a clean stop, as the dev stack's SIGTERM) while the
// three services run and the primary is written: they reconnect by
// themselves and nothing is lost or doubled.
func TestKafkaRestartWhileRunning(t *testing.T) {
	e := newEnv(t)
	caughtUp(t, e, 50)

	werr := make(chan error, 1)
	go func() { werr <- writeSlowly(e, 50, 300, 3*time.Millisecond) }()
	// The restart comes while the writer writes: after its first rows.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return testenv.Count(t, e.Primary, e.DB+".items") >= 60, "the writer has not started"
	})
	e.RestartKafka(t, 2*time.Second)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	consistent(t, e, 90*time.Second)
	assertExactlyOnce(t, e)
}

// writeSlowly is writeBatch spread over time, safe to run beside the test.
func writeSlowly(e *testenv.Env, from, n int, pause time.Duration) error {
	for i := from; i < from+n; i++ {
		if _, err := e.Primary.Exec(fmt.Sprintf("INSERT INTO %s.items VALUES (%d, 'slow', %d, NOW(6))", e.DB, i, i)); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return nil
}

// Redis loses everything (a restart without persistence): the cache-applier
// notices its marker is gone and rebuilds the cache from a snapshot of the
// standby, so that cache == standby again with no further writes.
func TestRedisDataLossRebuildsTheCache(t *testing.T) {
	e := newEnv(t)
	caughtUp(t, e, 100)

	ctx := context.Background()
	// Only this test's keys and marker: other tests share the Redis server.
	lost := 0
	iter := e.Redis.Scan(ctx, 0, "*"+e.DB+"*", 1000).Iterator()
	for iter.Next(ctx) {
		lost += int(e.Redis.Del(ctx, iter.Val()).Val())
	}
	if lost < 200 {
		t.Fatalf("deleted only %d keys: the test lost nothing worth rebuilding", lost)
	}
	consistent(t, e, 30*time.Second)
	writeBatch(t, e, 100, 50)
	consistent(t, e, 30*time.Second)
}

// Redis goes back in time: it restarts from a snapshot older than its last
// writes (RDB persistence; AOF fsynced every second loses the last second
// the same way), here staged on this test's keys alone by DUMP and, later,
// DEL and RESTORE in one transaction. Its marker is there, so nothing looks
// lost; the watermark read back is below the committed offsets, and the
// cache-applier writes the lost range again from the standby log; or, when
// retention has deleted the start of that range (log_deleted), rebuilds the
// cache from the standby, which holds every change the log no longer does.
func TestRedisBackToAnOlderSnapshotIsRepaired(t *testing.T) {
	for _, run := range []struct {
		name, repair string
		deleted      bool
	}{
		{"replayed", "writing them again from the standby log", false},
		{"log_deleted", "the standby log no longer holds them all", true},
	} {
		t.Run(run.name, func(t *testing.T) {
			e := newEnv(t)
			p := caughtUp(t, e, 50)
			restore := olderSnapshot(t, e)
			writeBatch(t, e, 50, 50) // new users and items, and balances of users 25..49 changed
			consistent(t, e, 30*time.Second)
			watermarked(t, e)
			if run.deleted {
				deleteRecords(t, e, e.Cfg.CacheTopic())
			}
			restore()
			p.cacheApplier.waitLog(run.repair)
			consistent(t, e, 30*time.Second)
		})
	}
}

// The cache-applier is stopped for longer than the standby log keeps
// records: retention deletes records its group had not read (rows added,
// changed and deleted meanwhile). Started again, it finds its committed
// offsets below the log's start, rebuilds the cache from the standby and
// reads on from the start: the cache equals the standby, deleted rows'
// keys gone, though the records that said so are gone too.
func TestRetentionPastTheCacheRebuildsIt(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 20)
	p.cacheApplier.stop(syscall.SIGTERM)
	writeBatch(t, e, 20, 30)
	if _, err := e.Primary.Exec("DELETE FROM " + e.DB + ".users WHERE id < 5"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.Standby, e.DB+".users")
		return n == 45, fmt.Sprintf("%d users on the standby, want 45", n)
	})
	deleteRecords(t, e, e.Cfg.CacheTopic())
	if n := e.Redis.Exists(context.Background(), e.Cfg.Cache.KeyPrefix+"user:1").Val(); n != 1 {
		t.Fatalf("the cache lacks user:1 before the cache-applier runs again: it would not show that deleted rows' keys go")
	}

	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	p.cacheApplier.waitLog("retention deleted records of the standby log the cache had not read")
	p.cacheApplier.waitLog("rebuilding the cache from a snapshot of the standby")
	consistent(t, e, 30*time.Second)
	writeBatch(t, e, 50, 10)
	consistent(t, e, 30*time.Second)
}

// olderSnapshot dumps this test's keys in Redis, once the watermark covers
// what the cache holds; restore puts Redis back to it, in one transaction.
func olderSnapshot(t *testing.T, e *testenv.Env) (restore func()) {
	t.Helper()
	ctx := context.Background()
	ours := func() []string {
		var keys []string
		iter := e.Redis.Scan(ctx, 0, "*"+e.DB+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	watermarked(t, e)
	type dumped struct {
		value string
		ttl   time.Duration
	}
	snapshot := make(map[string]dumped)
	for _, k := range ours() {
		v, err := e.Redis.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttl := e.Redis.PTTL(ctx, k).Val()
		snapshot[k] = dumped{v, max(ttl, 0)}
	}
	newKey := e.Cfg.Cache.KeyPrefix + "user:70"
	if _, ok := snapshot[newKey]; ok || len(snapshot) < 100 {
		t.Fatalf("the snapshot holds %d keys, %s among them: it would not show a loss", len(snapshot), newKey)
	}
	return func() {
		t.Helper()
		if _, err := e.Redis.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, k := range ours() {
				pipe.Del(ctx, k)
			}
			for k, d := range snapshot {
				pipe.Restore(ctx, k, d.ttl, d.value)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// deleteRecords deletes every record of topic, as retention would: each
// partition's log then starts at its end.
func deleteRecords(t *testing.T, e *testenv.Env, topic string) {
	t.Helper()
	ctx := context.Background()
	adm := admin(t, e)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := adm.DeleteRecords(ctx, ends.Offsets())
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatalf("delete the records of %s: %v", topic, err)
	}
}

// watermarked waits until the cache-applier's watermark holds, for every
// partition, the offset its group committed: it has finished its last batch.
func watermarked(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	adm := admin(t, e)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		committed, err := adm.FetchOffsets(ctx, e.Cfg.Cache.Group)
		if err != nil {
			return false, err.Error()
		}
		keys, err := e.Redis.Keys(ctx, "lockstep:wm:"+e.Cfg.Cache.Group+"*").Result()
		if err != nil || len(keys) != 1 {
			return false, fmt.Sprintf("watermark keys %v: %v", keys, err)
		}
		marks := e.Redis.HGetAll(ctx, keys[0]).Val()
		same := len(marks) > 0
		committed.Each(func(o kadm.OffsetResponse) {
			same = same && marks[strconv.Itoa(int(o.Partition))] == strconv.FormatInt(o.At, 10)
		})
		return same, fmt.Sprintf("watermark %v, committed %v", marks, committed)
	})
}

// craft writes hand-made records to the test's primary log, which it
// creates, with a standby table ready for them.
func craft(t *testing.T, e *testenv.Env, recs ...*schemas.Record) {
	t.Helper()
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB)
	testenv.Exec(t, e.Standby, "CREATE DATABASE "+e.DB, "CREATE TABLE "+e.DB+".items (id BIGINT UNSIGNED PRIMARY KEY, title TEXT)")
	cl, err := kgo.NewClient(append(clientOpts(t, e), kgo.DefaultProduceTopic(e.Cfg.Kafka.PrimaryTopic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := admin(t, e).CreateTopic(ctx, 1, -1, nil, e.Cfg.Kafka.PrimaryTopic); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		b, err := schemas.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// itemRow is row index of transaction gtid, inserting item id.
func itemRow(e *testenv.Env, gtid string, index int, last bool, id int) *schemas.Record {
	r := &schemas.Record{Op: schemas.OpInsert, Database: e.DB, Table: "items",
		Columns: []schemas.Column{{Name: "id", Type: "bigint unsigned", Key: true}, {Name: "title", Type: "text"}},
		After:   schemas.Row{"id": ptr(fmt.Sprint(id)), "title": ptr("crafted")},
		Txn:     schemas.Txn{GTID: gtid, Index: index, Last: last}}
	r.Key = schemas.Row{"id": r.After["id"]}
	return r
}

func standbyItems(t *testing.T, e *testenv.Env) string {
	t.Helper()
	var ids []int
	rows, err := e.Standby.Query("SELECT id FROM " + e.DB + ".items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return fmt.Sprint(ids)
}

// Crafted records on a real primary log: a transaction whose row indexes
// skip one. The storage-applier stops with an error that names the offset
// and the transaction, and applies nothing of it (nor anything after it).
func TestIncompleteTransactionIsNeverApplied(t *testing.T) {
	e := newEnv(t)
	craft(t, e,
		itemRow(e, "0-9-1", 0, true, 1),  // whole: applied
		itemRow(e, "0-9-2", 0, false, 2), // row 1 missing
		itemRow(e, "0-9-2", 2, true, 3),
		itemRow(e, "0-9-3", 0, true, 4), // after the hole: never reached
	)
	applier := start(t, writeConfig(t, e.Cfg), "storage-applier")
	mustContain(t, applier.waitExit(30*time.Second), "offset 2 is row 2 of transaction 0-9-2, expected row 1", "nothing of it was applied")
	if got := standbyItems(t, e); got != "[1]" {
		t.Fatalf("standby rows %v, want only [1] (the whole transaction before the broken one)", got)
	}
}

// A transaction twice in the primary log (a producer that resumed too early,
// or an aborted copy a broker delivered) is applied once: the standby's
// applied GTID set covers it the second time, and it is skipped.
func TestDuplicateTransactionIsAppliedOnce(t *testing.T) {
	e := newEnv(t)
	craft(t, e,
		itemRow(e, "0-9-1", 0, false, 1),
		itemRow(e, "0-9-1", 1, true, 2),
		itemRow(e, "0-9-1", 0, false, 1), // the same transaction again
		itemRow(e, "0-9-1", 1, true, 2),
		itemRow(e, "0-9-2", 0, true, 3),
	)
	applier := start(t, writeConfig(t, e.Cfg), "storage-applier")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := standbyItems(t, e)
		return got == "[1 2 3]", "standby items " + got
	})
	applier.waitLog("transaction already applied: a duplicate in the primary log, skipped")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := len(records(t, e, e.Cfg.Kafka.StandbyTopic))
		return n == 3, fmt.Sprintf("standby log has %d records, want 3 (the duplicate not republished)", n)
	})
	if done, err := applier.exited(); done {
		t.Fatalf("the applier stopped: %v", err)
	}
}

func ptr(s string) *string { return &s }

// The standby log deleted and re-created: the storage-applier fills it again
// from the primary log (its outbox), and the cache-applier, whose committed
// offsets belong to the old topic, follows the new one: it rebuilds the
// cache from the standby and reads the new log from its start.
func TestRecreatedStandbyTopic(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 30)
	p.applier.stop(syscall.SIGTERM)
	p.cacheApplier.stop(syscall.SIGTERM)
	deleteTopic(t, e, e.Cfg.Kafka.StandbyTopic)
	p.applier = start(t, p.cfgPath, "storage-applier")
	p.applier.waitLog("republishing transactions the standby committed but the standby log lacks")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n, m := len(records(t, e, e.Cfg.Kafka.StandbyTopic)), len(records(t, e, e.Cfg.Kafka.PrimaryTopic))
		return n == m, fmt.Sprintf("standby log has %d records, primary log %d", n, m)
	})
	assertExactlyOnce(t, e)
	cache := start(t, p.cfgPath, "cache-applier")
	cache.waitLog("the standby log is new")
	writeBatch(t, e, 30, 10)
	consistent(t, e, 30*time.Second)
}

func deleteTopic(t *testing.T, e *testenv.Env, topic string) {
	t.Helper()
	if _, err := admin(t, e).DeleteTopic(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
}

// Both topics emptied (DeleteRecords) and the broker restarted: kfake brings
// such partitions back at offset 0 under the same topic id. The applier and
// the cache-applier find their stored positions beyond the ends and stop,
// naming topic, partition and offsets; nothing is applied.
func TestTopicsThatWentBackStopTheServices(t *testing.T) {
	e := newEnv(t)
	p := caughtUp(t, e, 20)
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		s.stop(syscall.SIGTERM)
	}
	for _, topic := range []string{e.Cfg.Kafka.PrimaryTopic, e.Cfg.Kafka.StandbyTopic} {
		deleteRecords(t, e, topic)
	}
	e.RestartKafka(t, 0)

	applier := start(t, p.cfgPath, "storage-applier")
	mustContain(t, applier.waitExit(30*time.Second), "topic "+e.Cfg.Kafka.PrimaryTopic+" partition 0 went back", "but the topic ends at 0", "Nothing was applied")
	cache := start(t, p.cfgPath, "cache-applier")
	mustContain(t, cache.waitExit(30*time.Second), "topic "+e.Cfg.Kafka.StandbyTopic+" went back below the committed position", "starts over at 0", "Nothing was applied")
}

// A full Redis (its maxmemory reached, under noeviction) refuses the
// cache's writes with OOM. The cache-applier keeps the batch, commits no
// offset past it and tries again; once memory is freed it writes on, and
// the cache equals the standby: nothing was skipped while Redis refused.
func TestAFullRedisHoldsTheCacheBackAndLosesNothing(t *testing.T) {
	e := testenv.NewOnOwnRedis(t, "--maxmemory-policy", "noeviction")
	withRules(e)
	p := caughtUp(t, e, 20)
	ctx := context.Background()
	watermarked(t, e) // its last batch's offsets are committed
	adm := admin(t, e)
	before, err := adm.FetchOffsets(ctx, e.Cfg.Cache.Group)
	if err != nil {
		t.Fatal(err)
	}

	// Redis full: its limit below what it holds, so that it refuses every
	// write, as one grown past its limit does.
	if err := e.Redis.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	writeBatch(t, e, 20, 200)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.Standby, e.DB+".users")
		return n == 220, fmt.Sprintf("the standby holds %d users of 220", n)
	})
	p.cacheApplier.waitLog("OOM command not allowed")
	after, err := adm.FetchOffsets(ctx, e.Cfg.Cache.Group)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(before.KOffsets()[e.Cfg.Kafka.StandbyTopic], after.KOffsets()[e.Cfg.Kafka.StandbyTopic]) {
		t.Fatalf("offsets committed while Redis refused every write: %v, before the writes %v", after.KOffsets(), before.KOffsets())
	}
	if n := e.Redis.Exists(ctx, e.Cfg.Cache.KeyPrefix+"user:219").Val(); n != 0 {
		t.Fatal("user:219 is in the full Redis")
	}

	if err := e.Redis.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	consistent(t, e, 60*time.Second)
}
