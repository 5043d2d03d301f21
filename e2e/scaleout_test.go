package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Two cache-appliers in one group share the standby log's four partitions;
// when one is killed, the other takes its partitions over with no change
// lost, and no key ever goes back to an older version or value on the way.
func TestCacheAppliersShareThePartitions(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Kafka.StandbyPartitions = 4
	e.Cfg.Cache.SessionTimeout = 6 * time.Second // the broker's minimum: a quick hand-over
	p := startPipeline(t, e)
	start(t, p.cfgPath, "cache-applier")
	createTables(t, e)
	const users = 40
	for id := range users {
		testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.users VALUES (%d, 'u%d@x', 'n', 0, NULL)", e.DB, id, id))
	}
	consistent(t, e, 60*time.Second)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		a := assignment(t, e)
		return len(a) == 2 && len(a[0]) > 0 && len(a[1]) > 0 && len(a[0])+len(a[1]) == 4, fmt.Sprintf("assignment %v, want two members sharing 4 partitions", a)
	})

	underLoad(t, e, users, func() {
		time.Sleep(3 * time.Second)
		p.cacheApplier.stop(syscall.SIGKILL)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			a := assignment(t, e)
			return len(a) == 1 && len(a[0]) == 4, fmt.Sprintf("assignment %v, want the survivor holding all 4 partitions", a)
		})
		time.Sleep(2 * time.Second) // the survivor applies the workload alone for a while
	})
}

// underLoad runs fn while the balances of users 0..users-1 grow and an
// observer reads every user key with its version; then it checks that the
// cache equals the standby and that no key ever went back.
func underLoad(t *testing.T, e *testenv.Env, users int, fn func()) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			id := rand.IntN(users)
			if _, err := e.Primary.Exec(fmt.Sprintf("UPDATE %s.users SET balance = balance + 1 WHERE id = %d", e.DB, id)); err != nil {
				workErr = err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	regressions := make(chan string, 100)
	wg.Go(func() { watchForRegressions(ctx, e, users, regressions) })
	fn()
	stop()
	wg.Wait()
	if workErr != nil {
		t.Fatal(workErr)
	}
	consistent(t, e, 60*time.Second)
	close(regressions)
	for r := range regressions {
		t.Error(r)
	}
}

// assignment lists the partitions each member of the cache group holds.
func assignment(t *testing.T, e *testenv.Env) [][]int32 {
	t.Helper()
	adm, err := kafka.Admin(clientOpts(t, e))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	gs, err := adm.DescribeGroups(context.Background(), e.Cfg.Cache.Group)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int32
	for _, m := range gs[e.Cfg.Cache.Group].Members {
		var parts []int32
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range c.Topics {
				parts = append(parts, tp.Partitions...)
			}
		}
		slices.Sort(parts)
		out = append(out, parts)
	}
	return out
}

// watchForRegressions reads every user key and its version, atomically,
// over and over: neither may ever go down (balances only grow).
func watchForRegressions(ctx context.Context, e *testenv.Env, users int, out chan<- string) {
	type seen struct {
		version string
		balance float64
	}
	last := make(map[string]seen)
	for ctx.Err() == nil {
		for id := range users {
			key := e.Cfg.Cache.KeyPrefix + "user:" + strconv.Itoa(id)
			var bal *redis.StringCmd
			var ver *redis.StringCmd
			_, err := e.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
				bal = p.HGet(ctx, key, "balance")
				ver = p.Get(ctx, cache.VersionKey(key))
				return nil
			})
			if err != nil {
				continue // a miss (redis.Nil) or the end of the run
			}
			b, _ := strconv.ParseFloat(bal.Val(), 64)
			now := seen{ver.Val(), b}
			if prev, ok := last[key]; ok && (now.version < prev.version || now.balance < prev.balance) {
				select {
				case out <- fmt.Sprintf("%s went back: version %s balance %v after version %s balance %v", key, now.version, now.balance, prev.version, prev.balance):
				default:
				}
			}
			last[key] = now
		}
	}
}
