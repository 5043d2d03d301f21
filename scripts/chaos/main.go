// Command chaos runs the pipeline on a private stack under a workload with hot
// rows, injects faults chosen by a seed (kill -9 of each service, broker and
// database restarts, Redis losing its data, SIGSTOP of each server), watches
// for dirty or regressing cache reads while it runs, and after draining
// checks standby == primary, cache == standby and exactly-once delivery on
// both topics; it ends with a failover across a cut link between the sites.
// It exits 1 on any violation. scripts/chaos.sh runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

type options struct {
	seed     uint64
	duration time.Duration
	cycles   int
	root     string
	dev      string
	drain    time.Duration
}

func main() {
	var o options
	flag.Uint64Var(&o.seed, "seed", 1, "seed for the choice and timing of faults")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long to inject faults")
	flag.IntVar(&o.cycles, "cycles", 12, "number of faults to inject (the first ones cover every kind)")
	flag.DurationVar(&o.drain, "drain", 3*time.Minute, "how long to wait for the pipeline to drain after the faults")
	flag.StringVar(&o.root, "root", ".", "the repository root")
	flag.StringVar(&o.dev, "dev", "", "the stack's folder (scripts/chaos.sh passes the chaos stack's)")
	only := flag.String("kinds", "", "inject only these kinds of fault (comma-separated; default every kind: "+strings.Join(kinds, ",")+")")
	flag.Parse()
	// Only scripts/chaos.sh knows the chaos stack: run elsewhere, the
	// harness would fault whatever stack the environment names.
	if os.Getenv("LOCKSTEP_STACK") != "chaos" || o.dev == "" {
		fmt.Fprintln(os.Stderr, "chaos: run the harness with scripts/chaos.sh, which sets up the chaos stack's environment")
		os.Exit(2)
	}
	if *only != "" {
		picked := strings.Split(*only, ",")
		for _, k := range picked {
			if !slices.Contains(kinds, k) {
				fmt.Fprintf(os.Stderr, "chaos: --kinds: no fault kind %q (there are %s)\n", k, strings.Join(kinds, ", "))
				os.Exit(2)
			}
		}
		kinds = picked
	}
	// The clients' own reconnect chatter during faults is expected; the
	// harness reports what matters.
	redis.SetLogger(quiet{})
	_ = mysqldriver.SetLogger(stdlog.New(io.Discard, "", 0))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		log.Warn("stopping on a signal", "signal", s.String())
		cancel()
	}()
	ok, err := run(ctx, o, log)
	if err != nil {
		log.Error("chaos run failed", "err", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func run(ctx context.Context, o options, log *slog.Logger) (bool, error) {
	// One run at a time: two would fight over the same stack.
	lock, err := os.OpenFile(o.dev+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, fmt.Errorf("another chaos run holds %s.lock: %w", o.dev, err)
	}
	s, err := newStack(ctx, o, log)
	if err != nil {
		return false, err
	}
	defer s.down()
	if err := s.up(ctx); err != nil {
		return false, err
	}
	if err := s.connect(ctx); err != nil {
		return false, err
	}
	defer s.close()
	if err := s.prepareSchema(ctx); err != nil {
		return false, err
	}
	if err := s.startSpare(); err != nil {
		return false, err
	}

	rng := rand.New(rand.NewPCG(o.seed, 0x10c6))
	wctx, stopWork := context.WithCancel(ctx)
	w := &workload{s: s, rng: rand.New(rand.NewPCG(o.seed, 1))}
	obs := &observer{s: s, rng: rand.New(rand.NewPCG(o.seed, 2)), last: make(map[string]string)}
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx) }()
	go obs.run(wctx)

	results := make([]faultResult, 0, o.cycles)
	pause := o.duration / time.Duration(max(o.cycles, 1))
	for i := range o.cycles {
		if ctx.Err() != nil {
			break
		}
		k := kinds[i%len(kinds)]
		if i >= len(kinds) {
			k = kinds[rng.IntN(len(kinds))]
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rng.Int64N(int64(pause/2) + 1))):
		}
		r := s.inject(ctx, k, rng)
		results = append(results, r)
		log.Info("fault", "cycle", i+1, "kind", k, "recovered_in", r.recovery.Round(time.Millisecond), "err", r.err)
	}
	stopWork()
	if err := <-werr; err != nil {
		log.Warn("workload ended with an error", "err", err)
	}
	obs.wait()
	// the fault cycles' workload, counted before the failover phase writes more
	done := workDone{committed: w.committed.Load(), failed: w.failed.Load()}
	log.Info("faults done; draining", "timeout", o.drain)
	final, err := s.check(ctx, o.drain)
	if err != nil {
		return false, err
	}
	r := s.failoverAcrossACut(ctx, w, rng)
	log.Info("fault", "kind", r.kind, "failover_took", r.recovery.Round(time.Millisecond), "err", r.err)
	return report(o, append(results, r), done, obs, final), nil
}
