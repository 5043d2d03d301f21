package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// lag runs sysbench at a steady rate with the whole pipeline running, and
// every 100 ms probes it: a row inserted on the primary, timed from its
// commit until the standby has it and until its key is in Redis.
func (s *stack) lag(ctx context.Context, res *results) error {
	for _, name := range services {
		if s.running[name] == nil {
			if err := s.start(name); err != nil {
				return err
			}
		}
	}
	if err := s.drain(ctx); err != nil {
		return err
	}
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := s.sysbench(ctx, "run", "--threads=16", "--events=0", fmt.Sprintf("--rate=%d", s.o.lagRate),
			fmt.Sprintf("--time=%d", int(s.o.lagTime.Seconds())))
		done <- err
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			// sysbench stops when the primary falls behind the rate: the
			// lag is then measured over the time it kept it.
			if err != nil && !strings.Contains(err.Error(), "event queue is full") {
				return err
			}
			res.lagTime = time.Since(start)
			res.lagKept = err == nil
			to, herr := s.head(ctx)
			if herr != nil {
				return herr
			}
			res.lagRate = float64(to-from-int64(len(res.cacheLag))) / res.lagTime.Seconds()
			s.log.Info("steady load done", "probes", len(res.cacheLag), "kept_the_rate", res.lagKept)
			return nil
		case <-tick.C:
			if err := s.probe(ctx, res); err != nil {
				return err
			}
		}
	}
}

func (s *stack) probe(ctx context.Context, res *results) error {
	r, err := s.primary.ExecContext(ctx, "INSERT INTO sbtest.probe (at) VALUES (NOW(6))")
	if err != nil {
		return err
	}
	committed := time.Now()
	id, _ := r.LastInsertId()
	key := fmt.Sprintf("%sprobe:%d", s.cfg.Cache.KeyPrefix, id)
	for onStandby := false; ; time.Sleep(time.Millisecond) {
		if time.Since(committed) > 30*time.Second {
			return fmt.Errorf("probe row %d did not reach the standby and Redis within 30 s (logs under %s)", id, s.o.dev)
		}
		if !onStandby {
			var n int
			if err := s.standby.QueryRowContext(ctx, "SELECT COUNT(*) FROM sbtest.probe WHERE id = ?", id).Scan(&n); err != nil {
				return err
			}
			if onStandby = n == 1; onStandby {
				res.standbyLag = append(res.standbyLag, time.Since(committed))
			}
		}
		if onStandby {
			n, err := s.rdb.Exists(ctx, key).Result()
			if err != nil {
				return err
			}
			if n == 1 {
				res.cacheLag = append(res.cacheLag, time.Since(committed))
				return nil
			}
		}
	}
}

// bigTransaction commits one transaction of o.bigRows rows on the primary
// and waits until the standby and the cache-applier are through it: the
// services' peak memory then covers it.
func (s *stack) bigTransaction(ctx context.Context, res *results) error {
	_, err := s.primary.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE sbtest.big (id INT PRIMARY KEY, v CHAR(100) NOT NULL);
		INSERT INTO sbtest.big SELECT seq, REPEAT('x', 100) FROM sbtest.seq_1_to_%d`, s.o.bigRows))
	if err != nil {
		return err
	}
	return s.drain(ctx)
}
