package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// probeLimit is what a probe that has not arrived counts as.
const probeLimit = 30 * time.Second

// lag runs sysbench at a steady rate with the whole pipeline running and
// the serial MariaDB replica beside it as the anchor (the two parallel
// replicas stopped), probing every 100 ms: a row inserted on the primary,
// timed from its commit to the replica, to lockstep's standby and to its
// Redis key. It also counts the CPU each process spent.
func (s *stack) lag(ctx context.Context, res *results) error {
	if err := s.startAll(); err != nil {
		return err
	}
	anchor := s.replicas[0]
	for i, r := range s.replicas[1:] {
		if _, err := r.db.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return fmt.Errorf("stop the %s replica: %w", r.mode, err)
		}
		s.replicas[i+1].stopped = true
	}
	if _, err := anchor.db.ExecContext(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("start the %s replica: %w", anchor.mode, err)
	}
	if err := s.drain(ctx); err != nil {
		return err
	}
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	cpu0, err := s.cpu()
	if err != nil {
		return err
	}
	start := time.Now()
	for _, name := range services {
		s.profileCPU(name, "lag", min(20*time.Second, max(time.Second, s.o.lagTime-2*time.Second)))
	}
	p := &prober{s: s, anchor: anchor}
	done := make(chan error, 1)
	go func() { done <- s.steadyLoad(ctx, s.o.lagTime) }()
	pctx, stop := context.WithCancel(ctx)
	probing := make(chan error, 1)
	go func() { probing <- p.run(pctx) }()
	err = <-done
	res.lagTime = time.Since(start)
	cpu1, cerr := s.cpu()
	to, herr := s.head(ctx)
	stop()
	if perr := <-probing; err == nil {
		err = perr
	}
	if err == nil {
		err = errors.Join(cerr, herr)
	}
	if err != nil {
		return err
	}
	txns := float64(to - from - int64(p.sent()))
	res.lagRate = txns / res.lagTime.Seconds()
	res.cpuPer1000 = per1000(cpu0, cpu1, txns)
	// What is on its way still arrives, or counts as probeLimit.
	if err := p.finish(ctx); err != nil {
		return err
	}
	res.probesPlanned = int(res.lagTime / probeEvery)
	res.replicaLag, res.standbyLag, res.cacheLag = p.lags()
	s.log.Info("steady load done", "probes", len(res.cacheLag), "txn_per_s", int(res.lagRate))
	return nil
}

// steadyLoad is sysbench oltp_write_only at the lag phase's rate, 4 threads.
func (s *stack) steadyLoad(ctx context.Context, d time.Duration) error {
	_, err := s.sysbench(ctx, "run", "--threads=4", "--events=0", fmt.Sprintf("--rate=%d", s.o.lagRate),
		fmt.Sprintf("--time=%d", int(d.Seconds())))
	if err != nil && strings.Contains(err.Error(), "event queue is full") {
		return nil // the primary fell behind the rate: what it kept is reported
	}
	return err
}

const probeEvery = 100 * time.Millisecond

// prober inserts a probe row on the primary every probeEvery, without
// waiting for the ones before to arrive, and notes when each reaches the
// anchor replica, the standby and the cache.
type prober struct {
	s      *stack
	anchor replica

	mu     sync.Mutex
	probes []*probe // by id
}

type probe struct {
	id                      int64
	committed               time.Time
	replica, standby, cache time.Duration // 0: not yet
}

func (p *prober) sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.probes)
}

// run probes until ctx ends.
func (p *prober) run(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sending := make(chan error, 1)
	go func() { sending <- p.send(sctx) }()
	for {
		err := p.poll(ctx)
		if ctx.Err() != nil {
			cancel()
			return <-sending
		}
		if err != nil {
			cancel()
			<-sending
			return err
		}
		select {
		case err := <-sending:
			return err
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// send inserts a probe every probeEvery until ctx ends.
func (p *prober) send(ctx context.Context) error {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		r, err := p.s.primary.ExecContext(ctx, "INSERT INTO sbtest.probe (at) VALUES (NOW(6))")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		id, _ := r.LastInsertId()
		p.mu.Lock()
		p.probes = append(p.probes, &probe{id: id, committed: time.Now()})
		p.mu.Unlock()
	}
}

// finish polls until every probe has arrived everywhere or is older than
// probeLimit.
func (p *prober) finish(ctx context.Context) error {
	for {
		if err := p.poll(ctx); err != nil {
			return err
		}
		p.mu.Lock()
		waiting := false
		for _, pr := range p.probes {
			if (pr.replica == 0 || pr.standby == 0 || pr.cache == 0) && time.Since(pr.committed) < probeLimit {
				waiting = true
			}
		}
		p.mu.Unlock()
		if !waiting {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// poll notes the probes that arrived: rows reach the replica and the
// standby in primary commit order, so the highest id there says which;
// cache keys are checked one by one.
func (p *prober) poll(ctx context.Context) error {
	p.mu.Lock()
	pending := make([]*probe, 0, 16)
	for _, pr := range p.probes {
		if pr.replica == 0 || pr.standby == 0 || pr.cache == 0 {
			pending = append(pending, pr)
		}
	}
	p.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	var onReplica, onStandby int64
	const q = "SELECT COALESCE(MAX(id), 0) FROM sbtest.probe"
	if err := p.anchor.db.QueryRowContext(ctx, q).Scan(&onReplica); err != nil {
		return err
	}
	if err := p.s.standby.QueryRowContext(ctx, q).Scan(&onStandby); err != nil {
		return err
	}
	pipe := p.s.rdb.Pipeline()
	exists := make([]func() int64, len(pending))
	for i, pr := range pending {
		exists[i] = pipe.Exists(ctx, fmt.Sprintf("%sprobe:%d", p.s.cfg.Cache.KeyPrefix, pr.id)).Val
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, pr := range pending {
		at := now.Sub(pr.committed)
		if pr.replica == 0 && pr.id <= onReplica {
			pr.replica = at
		}
		if pr.standby == 0 && pr.id <= onStandby {
			pr.standby = at
		}
		if pr.cache == 0 && exists[i]() == 1 {
			pr.cache = at
		}
	}
	return nil
}

// lags are the probes' times to the replica, the standby and the cache; a
// probe that did not arrive, or arrived later, counts as probeLimit.
func (p *prober) lags() (replica, standby, cache []time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	capped := func(d time.Duration) time.Duration {
		if d == 0 || d > probeLimit {
			return probeLimit
		}
		return d
	}
	for _, pr := range p.probes {
		replica = append(replica, capped(pr.replica))
		standby = append(standby, capped(pr.standby))
		cache = append(cache, capped(pr.cache))
	}
	return replica, standby, cache
}

// catchUpAfterStop stops lockstep's storage-applier and the anchor replica's SQL
// thread together for o.stopFor under the lag phase's load, starts both,
// and times how long each takes to be back under 1 s behind the primary.
func (s *stack) catchUpAfterStop(ctx context.Context, res *results) error {
	anchor := s.replicas[0]
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	load := make(chan error, 1)
	go func() { load <- s.steadyLoad(lctx, 10*time.Second+s.o.stopFor+10*time.Minute) }()
	heads := &headHistory{}
	if err := heads.sample(ctx, s); err != nil {
		return err
	}
	wait := func(d time.Duration) error {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if err := heads.sample(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := wait(10 * time.Second); err != nil {
		return err
	}
	s.stop("storage-applier", res)
	if _, err := anchor.db.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		return err
	}
	s.log.Info("storage-applier and replica SQL thread stopped", "for", s.o.stopFor)
	if err := wait(s.o.stopFor); err != nil {
		return err
	}
	t0 := time.Now()
	if err := s.start("storage-applier"); err != nil {
		return err
	}
	if _, err := anchor.db.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
		return err
	}
	var lockstep, native time.Duration
	for lockstep == 0 || native == 0 {
		select {
		case err := <-load:
			if err == nil {
				err = fmt.Errorf("the load ended first")
			}
			return fmt.Errorf("catch-up not done after %s: %w", time.Since(t0).Round(time.Second), err)
		default:
		}
		if err := heads.sample(ctx, s); err != nil {
			return err
		}
		behind := heads.at(time.Now().Add(-time.Second))
		if lockstep == 0 {
			if n, err := s.applied(ctx); err == nil && n >= behind {
				lockstep = time.Since(t0)
			}
		}
		if native == 0 {
			n, err := gtidSeq(ctx, anchor.db, "SELECT @@gtid_slave_pos")
			if err != nil {
				return err
			}
			if n >= behind {
				native = time.Since(t0)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.catchUp, res.nativeCatchUp = lockstep, native
	s.log.Info("caught up after the stop", "lockstep", lockstep.Round(time.Millisecond), "native", native.Round(time.Millisecond))
	cancel()
	<-load
	return s.drain(ctx)
}

// headHistory is the primary's last GTID sequence number over time.
type headHistory struct {
	times []time.Time
	seqs  []int64
}

func (h *headHistory) sample(ctx context.Context, s *stack) error {
	n, err := s.head(ctx)
	if err != nil {
		return err
	}
	h.times, h.seqs = append(h.times, time.Now()), append(h.seqs, n)
	return nil
}

// at is the head as last sampled at or before t.
func (h *headHistory) at(t time.Time) int64 {
	seq := int64(0)
	for i, at := range h.times {
		if at.After(t) {
			break
		}
		seq = h.seqs[i]
	}
	return seq
}

// cpu reads the CPU seconds (user and system) each process of the run has
// spent: the services, the primary, standby and anchor replica servers,
// the broker, Redis and the benchmark itself.
func (s *stack) cpu() (map[string]float64, error) {
	pids := map[string]int{}
	for _, name := range services {
		if c := s.running[name]; c != nil {
			pids[name] = c.Process.Pid
		}
	}
	pids["bench"] = os.Getpid()
	for name, file := range map[string]string{"primary": "primary/server.pid", "standby": "standby/server.pid", "replica": "replica-serial/server.pid", "broker": "kafka/kafka.pid", "redis": "redis/redis.pid"} {
		b, err := os.ReadFile(filepath.Join(s.o.dev, file))
		if err != nil {
			return nil, err
		}
		if pids[name], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	out := map[string]float64{}
	for name, pid := range pids {
		v, err := cpuSeconds(pid)
		if err != nil {
			return nil, fmt.Errorf("CPU of the %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// per1000 is the CPU seconds each process spent between two readings of
// cpu, per 1,000 of the txns transactions committed between them.
func per1000(before, after map[string]float64, txns float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for name, v := range after {
		out[name] = (v - before[name]) / txns * 1000
	}
	return out
}

// cpuSeconds is a process's user and system time, from /proc (in clock
// ticks of 1/100 s, Linux's USER_HZ).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after it (state is field 3, utime 14, stime 15).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat has %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / 100, nil
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
