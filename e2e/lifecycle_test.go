package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
	"github.com/redis/go-redis/v9"
)

// Kafka is lost under a write load: the broker stops, its data is deleted,
// and it starts again empty. The producer, still running, meets an empty
// primary log and starts a stream of its own at the primary's current
// position, which the storage-applier refuses (it is not the log it
// applied). With the producer and the storage-applier stopped, producer
// reseed --from-standby starts the primary log again at the standby's
// checkpoint, in epoch 1; the cache-applier, which ran throughout, rebuilds
// the cache from the standby, whose versions of epoch 1 are above every
// one Redis held. Nothing is lost, nothing applied twice, and an observer
// of the cache never sees a balance or a version go down.
func TestKafkaLostReseedFromStandby(t *testing.T) {
	e := testenv.New(t)
	withRules(e)
	p := startPipeline(t, e)
	createTables(t, e)
	const users = 100
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users SELECT seq, CONCAT('u', seq, '@x'), 'n', 0, NULL FROM %s", e.DB, e.Seq(users-1)))
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users VALUES (0, 'u0@x', 'n', 0, NULL)", e.DB))
	consistent(t, e, 60*time.Second)
	before, err := mysql.Checkpoint(context.Background(), e.Standby, e.Cfg.Applier.Name)
	if err != nil {
		t.Fatal(err)
	}

	var out string
	underLoad(t, e, users, func() {
		e.LoseKafka(t)
		// Not the log it applied: the storage-applier stops, and says what to do.
		mustContain(t, p.applier.waitExit(time.Minute), "was deleted and re-created", "producer reseed --from-standby")
		// The producer went on, on a stream of its own in the new log.
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			for _, rec := range records(t, e, e.Cfg.Kafka.PrimaryTopic) {
				if r, err := schemas.Decode(rec.Value); err == nil && r.Op == schemas.OpUpdate {
					return true, ""
				}
			}
			return false, "the producer has not published the load to the new primary log"
		})
		p.producer.stop(syscall.SIGTERM)
		dry := p.run(t, true, "producer", "reseed", "--from-standby")
		t.Logf("producer reseed --from-standby:\n%s", dry)
		mustContain(t, dry, "a stream a producer started on the empty log", "would start the primary log at", "run again with --confirm")
		if cp, _ := mysql.Checkpoint(context.Background(), e.Standby, e.Cfg.Applier.Name); cp.Epoch != before.Epoch {
			t.Fatalf("reseed without --confirm moved the checkpoint to epoch %d", cp.Epoch)
		}
		out = p.run(t, true, "producer", "reseed", "--from-standby", "--confirm")
		t.Logf("producer reseed --from-standby --confirm:\n%s", out)
		mustContain(t, out, "moved to epoch 1")
		p.producer = start(t, p.cfgPath, "producer")
		p.applier = start(t, p.cfgPath, "storage-applier")
		p.cacheApplier.waitLogWithin("the standby log is new", time.Minute)
		// The load goes on across the new logs: the standby applies it
		// from the new primary log.
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			cp, err := mysql.Checkpoint(context.Background(), e.Standby, e.Cfg.Applier.Name)
			return err == nil && cp.Epoch == 1 && cp.Offset >= 20, fmt.Sprintf("standby checkpoint %+v (%v), want epoch 1 past offset 20", cp, err)
		})
	})

	after, err := mysql.Checkpoint(context.Background(), e.Standby, e.Cfg.Applier.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after.Epoch != 1 {
		t.Fatalf("standby checkpoint epoch %d after reseed, want 1", after.Epoch)
	}
	// Every key was written in the new epoch, by the rebuild or a change.
	key := e.Cfg.Cache.KeyPrefix + "user:1"
	v, err := e.Redis.Get(context.Background(), cache.VersionKey(key)).Result()
	if err != nil || !strings.HasPrefix(v, schemas.FormatVersion(1, 0)[:12]) {
		t.Fatalf("version of %s = %q, %v: want one of epoch 1", key, v, err)
	}
	// The new primary log starts where the standby was, not where the
	// producer's own stream had started.
	r, err := schemas.Decode(records(t, e, e.Cfg.Kafka.PrimaryTopic)[0].Value)
	if err != nil || r.Op != schemas.OpPosition {
		t.Fatalf("the new primary log's first record: %+v, %v; want a start position", r, err)
	}
	mustContain(t, out, "starts at "+r.Source.GTIDSet+";")
}

// The roles reverse and come back. Site A (the test's own primary) feeds
// site B (a standby of the test's own that keeps a binlog); A keeps a cache
// of its own (Redis database 1, fed from the primary log at the primary
// site). A planned failover makes B the primary; B takes writes (an update
// of every row, a delete, an insert). With the reversed config, storage-
// applier reverse makes A the standby of B in epoch 1 (its replicated
// database dropped, then filled by producer snapshot), and A's cache is
// corrected, not flushed: every key of epoch 0 replaced, the deleted row's
// key gone. Then the same back: failover to A, writes on A, reverse onto B
// in epoch 2, and both sites end equal, B's cache too.
func TestReverseAndFailBack(t *testing.T) {
	e := testenv.NewOwnSites(t)
	withRules(e)
	p := startPipeline(t, e)
	createTables(t, e)
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users SELECT seq, CONCAT('u', seq, '@x'), 'n', 0, NULL FROM %s", e.DB, e.Seq(50)))
	siteA := *e.Cfg
	siteA.Cache.Topic, siteA.Cache.Group, siteA.Redis.DB = siteA.Kafka.PrimaryTopic, e.DB+"-site-a", 1
	cacheA := start(t, writeConfig(t, &siteA), "cache-applier")
	consistent(t, e, time.Minute)
	redisA := redis.NewClient(&redis.Options{Addr: e.Cfg.Redis.Address, DB: 1})
	t.Cleanup(func() { redisA.Close() })
	t.Cleanup(func() { deleteKeys(redisA, e.Cfg.Cache.KeyPrefix) })
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return redisA.Exists(context.Background(), e.Cfg.Cache.KeyPrefix+"user:50").Val() == 1, "site A's own cache has not got user:50"
	})

	// B is the primary, A its standby, in epoch 1.
	p.producer.stop(syscall.SIGTERM)
	mustContain(t, p.run(t, true, "storage-applier", "failover", "--wait", "1m"), "READY")
	for _, s := range []*proc{p.applier, p.cacheApplier, cacheA} {
		s.stop(syscall.SIGTERM)
	}
	onB := reversed(t, e, e.Standby, e.Primary, redisA, "r1", 1)
	testenv.Exec(t, onB.Primary,
		fmt.Sprintf("UPDATE %s.users SET balance = balance + 100", e.DB),
		fmt.Sprintf("DELETE FROM %s.users WHERE id = 5", e.DB),
		fmt.Sprintf("INSERT INTO %s.users VALUES (51, 'u51@x', 'b', 1, NULL)", e.DB))
	p2 := startReversed(t, onB, 1)
	if redisA.Exists(context.Background(), e.Cfg.Cache.KeyPrefix+"user:5").Val() != 0 {
		t.Fatal("site A's cache still holds user:5, deleted on B")
	}
	testenv.Exec(t, onB.Primary, fmt.Sprintf("UPDATE %s.users SET name = 'b2' WHERE id = 7", e.DB))
	consistent(t, onB, time.Minute)

	// And back: A is the primary, B its standby, in epoch 2.
	p2.producer.stop(syscall.SIGTERM)
	mustContain(t, p2.run(t, true, "storage-applier", "failover", "--wait", "1m"), "READY")
	for _, s := range []*proc{p2.applier, p2.cacheApplier} {
		s.stop(syscall.SIGTERM)
	}
	onA := reversed(t, e, e.Primary, e.Standby, e.Redis, "r2", 2)
	testenv.Exec(t, onA.Primary, fmt.Sprintf("UPDATE %s.users SET name = 'a' WHERE id < 10", e.DB))
	startReversed(t, onA, 2)
	testenv.Exec(t, onA.Primary, fmt.Sprintf("UPDATE %s.users SET name = 'a2' WHERE id = 7", e.DB))
	consistent(t, onA, time.Minute)
	// Nothing came back across: A's binlog holds B's changes as A applied
	// them, but the new primary log carries the snapshot and, as a
	// transaction, only the one written on A since.
	var txns []string
	for _, rec := range records(t, onA, onA.Cfg.Kafka.PrimaryTopic) {
		if r, err := schemas.Decode(rec.Value); err == nil && r.Binlog() && r.Txn.Index == 0 && r.Database == e.DB {
			txns = append(txns, r.Txn.GTID)
		}
	}
	if len(txns) != 1 {
		t.Fatalf("the primary log of A after the fail-back carries transactions %v, want only the one written on A", txns)
	}
}

// reversed is the environment of a pipeline from primary into standby with
// the cache in rdb, on topics, applier, producer and group named after
// name: e's, with the roles (and the Redis) it says.
func reversed(t *testing.T, e *testenv.Env, primary, standby *sql.DB, rdb redis.UniversalClient, name string, epoch int64) *testenv.Env {
	t.Helper()
	cfg := *e.Cfg
	address := map[*sql.DB]string{e.Primary: e.Cfg.Primary.Address, e.Standby: e.Cfg.Standby.Address}
	cfg.Primary.Address, cfg.Standby.Address = address[primary], address[standby]
	cfg.Kafka.PrimaryTopic, cfg.Kafka.StandbyTopic = e.DB+"."+name+".primary", e.DB+"."+name+".standby"
	cfg.Applier.Name, cfg.Producer.TransactionalID, cfg.Cache.Group = e.DB+"-"+name, e.DB+"-"+name+"-producer", e.DB+"-"+name+"-cache"
	cfg.Producer.ServerID += uint32(epoch)
	cfg.Redis.DB = rdb.(*redis.Client).Options().DB
	r := *e
	r.Cfg, r.Primary, r.Standby, r.Redis = &cfg, primary, standby, rdb
	return &r
}

// startReversed runs reverse (first without --confirm) and producer
// snapshot for the pipeline of e, starts its services, and waits until the
// standby equals the primary and the cache the standby, every key of the
// new epoch.
func startReversed(t *testing.T, e *testenv.Env, epoch int64) *pipeline {
	t.Helper()
	p := &pipeline{cfgPath: writeConfig(t, e.Cfg)}
	dry := p.run(t, true, "storage-applier", "reverse")
	t.Logf("storage-applier reverse:\n%s", dry)
	mustContain(t, dry, "replicated databases to drop: "+e.DB, fmt.Sprintf("at epoch %d; run again with --confirm", epoch))
	if n := testenv.Count(t, e.Standby, e.DB+".users"); n < 0 {
		t.Fatal("reverse without --confirm dropped the database")
	}
	out := p.run(t, true, "storage-applier", "reverse", "--confirm")
	t.Logf("storage-applier reverse --confirm:\n%s", out)
	mustContain(t, out, fmt.Sprintf("starts at epoch %d", epoch))
	p.run(t, true, "producer", "snapshot")
	p.producer = start(t, p.cfgPath, "producer")
	p.applier = start(t, p.cfgPath, "storage-applier")
	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	consistent(t, e, 2*time.Minute)
	ctx := context.Background()
	err := redisconn.Scan(ctx, e.Redis, "lockstep:v:*"+e.Cfg.Cache.KeyPrefix+"*", func(k string) error {
		v, err := e.Redis.Get(ctx, k).Result()
		if err == nil && !strings.HasPrefix(v, schemas.FormatVersion(epoch, 0)[:12]) {
			err = fmt.Errorf("version key %s holds %q, not a version of epoch %d", k, v, epoch)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func deleteKeys(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	_ = redisconn.Scan(ctx, rdb, "*"+prefix+"*", func(k string) error { return rdb.Unlink(ctx, k).Err() })
}
