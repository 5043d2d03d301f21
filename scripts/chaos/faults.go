package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"
)

// kinds of fault, in the order the first cycles inject them.
var kinds = []string{
	"kill9-producer", "kill9-storage-applier", "kill9-cache-applier",
	"restart-kafka", "restart-primary", "restart-standby", "restart-redis",
	"sigstop-primary", "sigstop-standby", "sigstop-redis", "sigstop-kafka",
}

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
