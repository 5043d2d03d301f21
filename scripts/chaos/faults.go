package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lockstep-dr/lockstep/internal/wan"
)

// kinds of fault, in the order the first cycles inject them.
var kinds = []string{
	"kill9-producer", "kill9-storage-applier", "kill9-cache-applier", "kill9-primary", "kill9-standby",
	"restart-kafka", "restart-primary", "restart-standby", "restart-redis",
	"sigstop-primary", "sigstop-standby", "sigstop-redis", "sigstop-kafka",
	"wan-cut", "wan-halfopen", "wan-slow", "wipe-kafka",
}

// wanShape is the link between the sites: 20 ms round trip, ±10%.
var wanShape = wan.Shape{RTT: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}

// pid files of the servers, by the name the fault kinds use.
var pidFiles = map[string]string{
	"producer":        "producer/producer.pid",
	"storage-applier": "storage-applier/storage-applier.pid",
	"cache-applier":   "cache-applier/cache-applier.pid",
	"kafka":           "kafka/kafka.pid",
	"primary":         "primary/server.pid",
	"standby":         "standby/server.pid",
	"redis":           "redis/redis.pid",
}

type faultResult struct {
	kind     string
	recovery time.Duration // fault over -> a new primary row visible in the cache
	err      error
}

// inject applies one fault, brings back what it stopped (as a supervisor
// would: the services must resume by themselves from there), and measures
// how long the pipeline takes to carry a new row again.
func (s *stack) inject(ctx context.Context, kind string, rng *rand.Rand) faultResult {
	r := faultResult{kind: kind}
	verb, target, _ := strings.Cut(kind, "-")
	pf := pidFiles[target]
	switch verb {
	case "kill9":
		r.err = s.signal(pf, syscall.SIGKILL, true)
	case "restart":
		// SIGTERM: a clean stop (the embedded broker must not be killed
		// while transactions are open; Redis keeps nothing on disk).
		r.err = s.signal(pf, syscall.SIGTERM, true)
	case "sigstop":
		if r.err = s.signal(pf, syscall.SIGSTOP, false); r.err == nil {
			time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
			r.err = s.signal(pf, syscall.SIGCONT, false)
		}
	case "wan":
		r.err = s.wanFault(ctx, target, rng)
	case "wipe":
		r.err = s.loseKafka(ctx)
	}
	if r.err != nil {
		return r
	}
	time.Sleep(time.Second) // the supervisor's restart delay
	if r.err = s.up(ctx); r.err != nil {
		return r
	}
	start := time.Now()
	r.err = s.probe(ctx, 3*time.Minute)
	r.recovery = time.Since(start)
	return r
}

// wanFault disturbs the link between the sites under the workload: cut
// (its connections closed, new ones refused) for 10 s or 2 minutes, past
// the Kafka transaction timeout; half-open (bytes dropped, connections
// kept) until the producer finds it (README "Two sites" bounds that);
// slow (100 KB/s) for 20 s.
func (s *stack) wanFault(ctx context.Context, how string, rng *rand.Rand) error {
	switch how {
	case "cut":
		s.wan.Cut()
		time.Sleep([]time.Duration{10 * time.Second, 2 * time.Minute}[rng.IntN(2)])
		return s.wan.Restore()
	case "halfopen":
		log := filepath.Join(s.o.dev, "producer", "producer.log")
		before, err := countIn(log, "stage failed")
		if err != nil {
			return err
		}
		if err := s.wan.HalfOpen(); err != nil {
			return err
		}
		defer s.wan.Heal()
		if found, err := waitForMore(ctx, log, "stage failed", before, 30*time.Second); err != nil || found {
			return err
		}
		return fmt.Errorf("the producer did not find the half-open link to Kafka within 30s (README \"Two sites\" bounds it)")
	case "slow":
		slow := wanShape
		slow.BytesPerSec = 100_000
		if err := s.wan.Set(slow); err != nil {
			return err
		}
		time.Sleep(20 * time.Second)
		return s.wan.Set(wanShape)
	}
	return fmt.Errorf("no WAN fault %q", how)
}

// loseKafka loses the Kafka cluster under the workload and recovers as the
// README's runbook says: the broker stops and its data is deleted, then it
// starts again empty with every service (the producer starts a stream of
// its own on the empty log, the storage-applier stops on it); the producer
// and the storage-appliers are stopped, producer reseed --from-standby
// --confirm starts the primary log again at the standby's checkpoint, and
// they start again. The cache-applier runs throughout.
func (s *stack) loseKafka(ctx context.Context) error {
	if err := s.signal(pidFiles["kafka"], syscall.SIGTERM, true); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.o.dev, "kafka", "data")); err != nil {
		return err
	}
	log := filepath.Join(s.o.dev, "storage-applier", "storage-applier.log")
	before, err := countIn(log, "was deleted and re-created")
	if err != nil {
		return err
	}
	if err := s.up(ctx); err != nil {
		return err
	}
	if found, err := waitForMore(ctx, log, "was deleted and re-created", before, 90*time.Second); err != nil || !found {
		if err == nil {
			err = fmt.Errorf("the storage-applier did not stop on the new, empty primary log within 90s")
		}
		return err
	}
	s.stopSpare()
	for _, service := range []string{"producer", "storage-applier"} {
		if err := s.signal(pidFiles[service], syscall.SIGTERM, true); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	if out, err := s.command("producer", "reseed", "--from-standby", "--confirm").CombinedOutput(); err != nil {
		return fmt.Errorf("producer reseed --from-standby --confirm: %w\n%s", err, out)
	}
	if err := s.up(ctx); err != nil {
		return err
	}
	return s.startSpare()
}

// waitForMore waits, up to within, until more than before lines of a file
// contain text; found says whether they did.
func waitForMore(ctx context.Context, path, text string, before int, within time.Duration) (found bool, err error) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		if n, err := countIn(path, text); err != nil || n > before {
			return err == nil, err
		}
	}
	return false, nil
}

// countIn counts the lines of a file that contain text.
func countIn(path, text string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), text), nil
}

// probe writes a row on the primary and waits for its key in the cache.
func (s *stack) probe(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var id int64
	for {
		res, err := s.primary.ExecContext(ctx, "INSERT INTO chaos.probe (at) VALUES (NOW(6))")
		if err == nil {
			id, _ = res.LastInsertId()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("probe insert: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	key := fmt.Sprintf("probe:%d", id)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n, err := s.rdb.Exists(ctx, key).Result(); err == nil && n == 1 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("probe %s did not reach the cache within %s", key, timeout)
}
