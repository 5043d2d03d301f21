package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
)

// The floor under cpu_vs_native: what the clients the design builds on
// (go-mysql, franz-go) cost at the lag phase's rate when they do nothing but
// receive what lockstep's three services receive: the primary's binlog, the
// primary log, the standby log. Each follower is this binary run again
// ("follow <what>") so that /proc gives its CPU apart from everything else.
var followers = []string{"binlog", "primary-log", "standby-log"}

const followTimeout = 30 * time.Second

// floor runs the same steady load as the lag phase, for as long (at most a
// minute), with the whole pipeline running and the three followers beside
// it, and counts the CPU each process spends per 1,000 primary
// transactions.
func (s *stack) floor(ctx context.Context, res *results) error {
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	pids := map[string]int{}
	ready := make(chan error, len(followers))
	for _, what := range followers {
		cmd := exec.CommandContext(ctx, os.Args[0], "follow", what, "--config", s.o.config, "--from", fmt.Sprint(from))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start the %s follower: %w", what, err)
		}
		procs = append(procs, cmd)
		pids[what] = cmd.Process.Pid
		go func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() && sc.Text() == "following" {
				ready <- nil
				io.Copy(io.Discard, out)
				return
			}
			ready <- fmt.Errorf("the %s follower ended before it received anything: see the lines above", what)
		}()
	}
	// The load starts at once (the logs' followers receive only what it
	// writes); the CPU is counted from when every follower receives.
	d := min(time.Minute, s.o.lagTime)
	load, stop := context.WithCancel(ctx)
	defer stop()
	loaded := make(chan error, 1)
	go func() { loaded <- s.steadyLoad(load, d+followTimeout) }()
	timeout := time.After(followTimeout)
	for range followers {
		select {
		case err := <-ready:
			if err != nil {
				return err
			}
		case err := <-loaded:
			return fmt.Errorf("the load ended before the followers received: %v", err)
		case <-timeout:
			return fmt.Errorf("the followers received nothing for %s", followTimeout)
		}
	}
	if from, err = s.head(ctx); err != nil {
		return err
	}
	cpu0, err := s.cpuOf(pids)
	if err != nil {
		return err
	}
	select {
	case <-time.After(d):
	case err := <-loaded:
		return fmt.Errorf("the load ended early: %v", err)
	}
	cpu1, err := s.cpuOf(pids)
	if err != nil {
		return err
	}
	to, err := s.head(ctx)
	if err != nil {
		return err
	}
	res.floorTime, res.floorRate = d, float64(to-from)/d.Seconds()
	res.floorPer1000 = per1000(cpu0, cpu1, float64(to-from))
	return nil
}

// cpuOf is cpu with the followers' processes too.
func (s *stack) cpuOf(pids map[string]int) (map[string]float64, error) {
	out, err := s.cpu()
	if err != nil {
		return nil, err
	}
	for name, pid := range pids {
		if out[name], err = cpuSeconds(pid); err != nil {
			return nil, fmt.Errorf("CPU of the %s follower: %w", name, err)
		}
	}
	return out, nil
}

// follow is the follower process: it receives what, from the primary's
// transaction from (the binlog) or the log's end, and throws it away, until
// it is killed. It says "following" on its output once something came.
func follow(args []string) error {
	if len(args) < 1 {
		return errors.New("follow binlog|primary-log|standby-log --config FILE --from SEQ")
	}
	what := args[0]
	fs := flag.NewFlagSet("follow", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the services' config")
	from := fs.Int64("from", 0, "with binlog: the primary's transaction to start after")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	said := false
	received := func() {
		if !said {
			fmt.Println("following")
			said = true
		}
	}
	switch what {
	case "binlog":
		stream, closeSyncer, err := binlogFrom(cfg, 4498, *from)
		if err != nil {
			return err
		}
		defer closeSyncer()
		for {
			if _, err := stream.GetEvent(ctx); err != nil {
				return err
			}
			received()
		}
	case "primary-log", "standby-log":
		topic := cfg.Kafka.PrimaryTopic
		if what == "standby-log" {
			topic = cfg.CacheTopic()
		}
		opts, err := kafka.Options(cfg.Kafka)
		if err != nil {
			return err
		}
		// As the appliers read: committed records only, from where the
		// log is now.
		cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		for {
			f := cl.PollFetches(ctx)
			if err := f.Err0(); err != nil {
				return err
			}
			if f.NumRecords() > 0 {
				received()
			}
		}
	}
	return fmt.Errorf("follow %q: want binlog, primary-log or standby-log", what)
}
