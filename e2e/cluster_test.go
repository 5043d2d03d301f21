package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// The pipeline with its cache on a Redis Cluster (3 masters): rows whose
// keys move between slots, evictions, a DDL on a cached table, the loss of
// every master's data, warm and replay; the cache equals the standby after
// each, and every key lockstep wrote sits in the slot Redis computes, its
// version key beside it.
func TestCacheOnRedisCluster(t *testing.T) {
	e := testenv.NewOnCluster(t)
	withRules(e)
	p := startPipeline(t, e)
	createTables(t, e)
	ctx := context.Background()
	writeBatch(t, e, 0, 100)
	for i := range 20 {
		if err := e.Redis.Set(ctx, fmt.Sprintf("%ssess:%d", e.Cfg.Cache.KeyPrefix, i), "filled by the application", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+e.DB+".sessions SELECT seq, 't' FROM "+e.Seq(19),
		"UPDATE "+e.DB+".sessions SET token = 'u'",
		// new emails: every user:email key moves to another slot
		"UPDATE "+e.DB+".users SET email = CONCAT('moved-', email) WHERE id % 2 = 0",
		"DELETE FROM "+e.DB+".users WHERE id % 7 = 0",
		"DELETE FROM "+e.DB+".items WHERE id > 90",
	)
	consistent(t, e, 60*time.Second)
	// The evictions come through partitions of their own.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for i := 1; i < 20; i++ {
			if exists(t, e, fmt.Sprintf("sess:%d", i)) {
				return false, fmt.Sprintf("sess:%d still cached after its row changed (evict rule)", i)
			}
		}
		return true, ""
	})
	keys := keysBySlot(t, e)
	if len(keys) < 2 {
		t.Fatalf("the test's keys are on %d master(s): want them spread over the cluster", len(keys))
	}

	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".users ADD COLUMN tier INT NOT NULL DEFAULT 3")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:1", "tier") == "3", "user:1 has no tier field after the ALTER"
	})
	consistent(t, e, 60*time.Second)

	// Every master loses its data: the cache-applier rebuilds from the standby.
	if err := redisconn.EachMaster(ctx, e.Redis, func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".users SET name = 'after the loss' WHERE id = 1")
	consistent(t, e, 60*time.Second)
	if hget(t, e, "user:2", "name") != "n" {
		t.Fatal("user:2 (not changed since the loss) was not rebuilt")
	}

	mustContain(t, p.run(t, true, "cache-applier", "verify", "cache"), "0 missing, 0 with a different value, 0 orphan keys")
	mustContain(t, p.run(t, true, "cache-applier", "warm"), "cache warmed from the standby at version")
	mustContain(t, p.run(t, true, "cache-applier", "replay", "--from-offset", "0"), "replayed offsets 0..")
	consistent(t, e, 30*time.Second)
}

// keysBySlot checks every key of the test against CLUSTER KEYSLOT on the
// master that holds it: cache.Slot computes the same slot, and a cached
// key's version key has it too. It returns the masters' addresses with
// how many of the test's keys each holds.
func keysBySlot(t *testing.T, e *testenv.Env) map[string]int {
	t.Helper()
	var mu sync.Mutex
	held := make(map[string]int)
	err := redisconn.EachMaster(context.Background(), e.Redis, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, "*"+e.DB+":*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			for _, key := range []string{k, cache.VersionKey(k)} {
				slot, err := m.ClusterKeySlot(ctx, key).Result()
				if err != nil {
					return err
				}
				if int(slot) != cache.Slot(k) {
					return fmt.Errorf("CLUSTER KEYSLOT %q = %d; cache.Slot(%q) = %d", key, slot, k, cache.Slot(k))
				}
			}
			mu.Lock()
			held[m.Options().Addr]++
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// A Redis master dies with writes its replica never got. The replica is
// stopped (SIGSTOP) and its link cut while rows are written, so that the
// master acknowledges writes its replica does not have; then the master is
// killed (SIGKILL), the replica continued and promoted, and the old master
// started again. With cache.wait_replicas: 1 the cache-applier committed no
// offset before the replica held the batch: nothing is lost, nothing to
// repair. With 0 the writes are lost (the same run without watermarks left
// 208 keys missing), and the watermarks find and repair them, also on a
// master whose slots resharding scattered so that it holds none of the
// watermark keys spread over the slots. The cache equals the standby
// either way.
func TestRedisMasterKilledAfterWritesItsReplicaMissed(t *testing.T) {
	for _, c := range []struct {
		wait      int
		scattered bool
	}{{1, false}, {0, false}, {0, true}} {
		name := fmt.Sprintf("wait_replicas=%d", c.wait)
		if c.scattered {
			name += ",slots_scattered"
		}
		t.Run(name, func(t *testing.T) {
			wait := c.wait
			e := testenv.NewOnClusterAlone(t)
			withRules(e)
			e.Cfg.Cache.WaitReplicas, e.Cfg.Cache.WaitTimeout = wait, 300*time.Millisecond
			// the victim: the master of a key not on a spread key's slot
			victimKey := e.Cfg.Cache.KeyPrefix + "user:1"
			for id := 2; cache.Slot(victimKey)%spreadStep == 0; id++ {
				victimKey = fmt.Sprintf("%suser:%d", e.Cfg.Cache.KeyPrefix, id)
			}
			if c.scattered {
				scatter(t, e, victimKey)
			}
			p := caughtUp(t, e, 20)

			master, replica := e.MasterAndReplica(t, victimKey)
			signal(t, replica.PID, syscall.SIGSTOP)
			continued := false
			t.Cleanup(func() {
				if !continued {
					signal(t, replica.PID, syscall.SIGCONT)
				}
			})
			// What the master sent before is in the stopped replica's
			// socket: cut the link, so that what comes now stays on the
			// master alone.
			m := redis.NewClient(&redis.Options{Addr: master.Addr})
			defer m.Close()
			if err := m.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
				t.Fatal(err)
			}
			writeBatch(t, e, 20, 200) // a third of the keys on the victim's slots
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				return testenv.Count(t, e.Standby, e.DB+".users") == 220, "the new rows have not reached the standby"
			})
			// The cache-applier has written the new rows to the master:
			// with wait_replicas 0 every key on its slots, with 1 the first
			// batch's (it then waits for the stopped replica).
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				held, owned := 0, 0
				for id := 20; id < 220; id++ {
					n, err := m.Exists(context.Background(), fmt.Sprintf("%suser:%d", e.Cfg.Cache.KeyPrefix, id)).Result()
					if err != nil && strings.HasPrefix(err.Error(), "MOVED") {
						continue // another master's slot
					}
					if err != nil {
						return false, err.Error()
					}
					owned++
					held += int(n)
				}
				return held == owned || (wait > 0 && held > 0), fmt.Sprintf("the master holds %d of its %d new keys", held, owned)
			})
			signal(t, master.PID, syscall.SIGKILL)
			signal(t, replica.PID, syscall.SIGCONT)
			continued = true
			// Started again before the failover, the master (no
			// persistence) would come back empty and keep its slots.
			promoted := redis.NewClient(&redis.Options{Addr: replica.Addr})
			defer promoted.Close()
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				info := promoted.Info(context.Background(), "replication").Val()
				return strings.Contains(info, "role:master") && syscall.Kill(master.PID, 0) != nil, "the replica has not taken over"
			})
			e.StartRedisNode(t, master)
			consistent(t, e, 90*time.Second)
			log, err := os.ReadFile(p.cacheApplier.log)
			if err != nil {
				t.Fatal(err)
			}
			if repaired := strings.Contains(string(log), "Redis lost writes it had acknowledged"); repaired != (wait == 0) {
				t.Fatalf("wait_replicas %d: lost writes repaired from the standby log: %v, want %v", wait, repaired, wait == 0)
			}
		})
	}
}

// spreadStep is how many slots apart the cache-applier's spread watermark
// keys are (cacheapply.watermarkKeys of them).
const spreadStep = cache.Slots / 64

// scatter moves away from the master of key, to another master, every slot
// of its that is a multiple of spreadStep, keys and all (CLUSTER SETSLOT
// and MIGRATE, as redis-cli does slot by slot): what resharding can leave,
// a master of many slots none of which holds a spread watermark key. A
// master an earlier run scattered (the test runs again on MySQL, on the
// same cluster) has none to move.
func scatter(t *testing.T, e *testenv.Env, key string) {
	t.Helper()
	ctx := context.Background()
	victim, victimID := e.MasterOf(t, key)
	shards, err := e.Redis.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var to redis.ClusterNode
	for _, s := range shards {
		if s.Nodes[0].ID != victimID {
			to = s.Nodes[0]
		}
	}
	if to.ID == "" {
		t.Fatal("the test cluster has one master serving slots, want 2 or more")
	}
	target := redis.NewClient(&redis.Options{Addr: to.Addr})
	defer target.Close()
	host, port, _ := strings.Cut(to.Addr, ":")
	do := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", args, c.Options().Addr, err)
		}
	}
	for _, s := range shards {
		if s.Nodes[0].ID != victimID {
			continue
		}
		for slot := (s.Start + spreadStep - 1) / spreadStep * spreadStep; slot <= s.End; slot += spreadStep {
			do(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", victimID)
			do(victim, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID)
			for {
				keys, err := victim.ClusterGetKeysInSlot(ctx, slot, 100).Result()
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) == 0 {
					break
				}
				args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
				for _, k := range keys {
					args = append(args, k)
				}
				do(victim, args...)
			}
			do(target, "CLUSTER", "SETSLOT", slot, "NODE", to.ID)
			do(victim, "CLUSTER", "SETSLOT", slot, "NODE", to.ID)
		}
	}
	clusterAgrees(t, e)
	e.Redis.(*redis.ClusterClient).ReloadState(ctx)
}

// clusterAgrees waits until redis-cli --cluster check passes: the nodes
// agree on the slots (after a move, or a master failed over by an earlier
// test).
func clusterAgrees(t *testing.T, e *testenv.Env) {
	t.Helper()
	seed := e.Cfg.Redis.Addresses()[0]
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		out, err := exec.Command("redis-cli", "--cluster", "check", seed).CombinedOutput()
		return err == nil, string(out)
	})
}

func signal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %s to %d: %v", sig, pid, err)
	}
}

// Slots move between masters (redis-cli --cluster reshard, there and back)
// while rows change: the cache-applier follows MOVED and ASK, an observer
// reading key and version together never sees either go back, and the
// cache equals the standby at the end.
func TestCacheOnRedisClusterWhileSlotsMove(t *testing.T) {
	e := testenv.NewOnClusterAlone(t)
	withRules(e)
	startPipeline(t, e)
	createTables(t, e)
	const users = 200
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users SELECT seq, CONCAT('u', seq, '@x'), 'n', 0, NULL FROM %s", e.DB, e.Seq(users-1)))
	testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users VALUES (0, 'u0@x', 'n', 0, NULL)", e.DB))
	consistent(t, e, 60*time.Second)

	underLoad(t, e, users, func() {
		from, to, slots := twoMasters(t, e)
		reshard(t, e, from, to, slots)
		reshard(t, e, to, from, slots)
	})
}

// twoMasters are the node ids of the test cluster's master with the most
// slots and of another master, and half the slots of the first: moving
// them there and back empties no master (Redis makes a master left without
// slots a replica).
func twoMasters(t *testing.T, e *testenv.Env) (from, to string, slots int) {
	t.Helper()
	shards, err := e.Redis.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	held := make(map[string]int)
	for _, s := range shards {
		held[s.Nodes[0].ID] += s.End - s.Start + 1
	}
	for id, n := range held {
		if from == "" || n > held[from] {
			from = id
		}
	}
	for id := range held {
		if id != from {
			to = id
		}
	}
	if to == "" {
		t.Fatalf("the test cluster has %d masters serving slots, want 2 or more", len(held))
	}
	return from, to, held[from] / 2
}

// reshard moves slots from one master to another with redis-cli, as an
// operator would.
func reshard(t *testing.T, e *testenv.Env, from, to string, slots int) {
	t.Helper()
	// redis-cli refuses while the nodes disagree.
	clusterAgrees(t, e)
	seed := e.Cfg.Redis.Addresses()[0]
	out, err := exec.Command("redis-cli", "--cluster", "reshard", seed, "--cluster-from", from, "--cluster-to", to,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster reshard %d slots from %s to %s: %v\n...%s", slots, from, to, err, out[max(0, len(out)-3000):])
	}
}
