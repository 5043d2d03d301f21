package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
)

// observer samples cached keys while the run goes on. A key's version is the
// primary-log epoch and offset of the change that wrote it. Dirty: a version beyond
// the standby's applied checkpoint read right after it (the cache ahead of
// the standby database). Regressed: a version below one already seen for
// the key (the cache going back to an older value).
type observer struct {
	s     *stack
	rng   *rand.Rand
	last  map[string]string
	mu    sync.Mutex
	wg    sync.WaitGroup
	reads int
	viol  []string
}

func (o *observer) run(ctx context.Context) {
	o.wg.Add(1)
	defer o.wg.Done()
	for ctx.Err() == nil {
		key := fmt.Sprintf("hot:%d", 1+o.rng.IntN(hotRows))
		if o.rng.IntN(2) == 0 {
			key = fmt.Sprintf("acct:%d", 1+o.rng.IntN(accounts))
		}
		o.sample(ctx, key)
		time.Sleep(time.Millisecond)
	}
}

func (o *observer) sample(ctx context.Context, key string) {
	v, err := o.s.rdb.Get(ctx, cache.VersionKey(key)).Result()
	if err != nil {
		return // no version yet, or Redis down: nothing to judge
	}
	applied, err := o.s.standbyApplied(ctx)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads++
	if v > applied {
		o.viol = append(o.viol, fmt.Sprintf("dirty: %s has version %s, the standby has applied only up to %s", key, v, applied))
	}
	if prev, ok := o.last[key]; ok && v < prev {
		o.viol = append(o.viol, fmt.Sprintf("regressed: %s went from version %s back to %s", key, prev, v))
	}
	o.last[key] = v
}

func (o *observer) wait() { o.wg.Wait() }
