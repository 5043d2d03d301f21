// Command bench measures lockstep side by side with its baselines, in one
// run on one machine: MariaDB's own replication applying the same sysbench
// backlog as the storage-applier (a replica in each of its modes), go-mysql's
// raw binlog decode under the producer, plain pipelined HSET under the
// cache-applier; then, beside the serial replica, the end-to-end lag at a
// steady rate, the catch-up after a stop and the CPU each process spends per
// transaction; the services' peak memory. scripts/bench.sh starts the
// servers and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/wan"
)

type options struct {
	dev, config string
	replicaPort int
	quick       bool
	reps        int
	backlog     int // sysbench transactions per backlog
	tableSize   int
	lagRate     int
	lagTime     time.Duration
	stopFor     time.Duration
	bigRows     int
	profile     string
	// redisCluster: seed nodes of a Redis Cluster the cache-applier's
	// backlog is also written to; empty for none.
	redisCluster string
	// the WAN phase (--wan), which replaces the others
	wanRTTs    []time.Duration
	wanRate    int64 // bytes/s each way
	placements []placement
	wanBacklog int
	wanLagRate int
	wanLagTime time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "follow" {
		if err := follow(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench follow:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.dev, "dev", ".dev/bench", "the stack's folder (binaries in bin/, one folder per service)")
	flag.StringVar(&o.config, "config", "scripts/bench.yaml", "the services' config")
	flag.IntVar(&o.replicaPort, "replica-port", 0, "port of the serial MariaDB replica on 127.0.0.1; the conservative and optimistic ones listen on the next two, the services' pprof with --profile on the three after")
	flag.BoolVar(&o.quick, "quick", false, "a smoke run in under 3 minutes: small backlogs, one repetition, a short lag phase")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each measurement: one backlog each (0: only the lag and memory phases)")
	flag.IntVar(&o.backlog, "backlog", 100000, "sysbench transactions per backlog")
	flag.IntVar(&o.tableSize, "table-size", 25000, "rows per sysbench table (4 tables)")
	flag.IntVar(&o.lagRate, "lag-rate", 1000, "sysbench transactions/s during the lag and catch-up phases")
	flag.DurationVar(&o.lagTime, "lag-time", 5*time.Minute, "length of the lag phase")
	flag.DurationVar(&o.stopFor, "stop-for", time.Minute, "how long the storage-applier and the replica's SQL thread stay stopped in the catch-up phase")
	flag.IntVar(&o.bigRows, "big-rows", 200000, "rows of the one big transaction of the memory phase")
	flag.StringVar(&o.redisCluster, "redis-cluster", "", "seed nodes (host:port,...) of a Redis Cluster to measure the cache-applier on too")
	flag.StringVar(&o.profile, "profile", "", "save CPU profiles of each service into this folder (pprof format): 3 s of its first catch-up (<service>.pprof) and up to 20 s of the lag phase (<service>-lag.pprof)")
	var rtts, rateCap, where string
	flag.StringVar(&rtts, "wan", "", "measure across a simulated WAN instead: round trip times, comma-separated (e.g. 50ms or 20ms,50ms,100ms), each against RTT 0 in the same run")
	flag.StringVar(&rateCap, "wan-rate", "10MB", "with --wan: the bandwidth cap each way (e.g. 10MB, 100KB)")
	flag.StringVar(&where, "placement", "binlog", "with --wan: where the producer and Kafka run, comma-separated or all: "+placementNames())
	flag.IntVar(&o.wanBacklog, "wan-backlog", 20000, "with --wan: sysbench transactions of the backlog at each RTT")
	flag.IntVar(&o.wanLagRate, "wan-lag-rate", 1000, "with --wan: sysbench transactions/s of the steady load at each RTT")
	flag.DurationVar(&o.wanLagTime, "wan-lag-time", 30*time.Second, "with --wan: length of the steady load at each RTT")
	flag.Parse()
	if o.replicaPort == 0 {
		fmt.Fprintln(os.Stderr, "bench: --replica-port is required: run the benchmark with scripts/bench.sh, which starts its stack")
		os.Exit(2)
	}
	if err := o.parseWAN(rtts, rateCap, where); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.quick {
		o.reps, o.backlog, o.tableSize, o.lagTime, o.stopFor, o.bigRows = 1, 3000, 2000, 15*time.Second, 10*time.Second, 20000
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	_ = mysqldriver.SetLogger(stdlog.New(io.Discard, "", 0))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	res, err := run(ctx, o, log)
	if err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
	res.print(os.Stdout, o)
	log.Info("benchmark done", "took", time.Since(start).Round(time.Second))
}

func run(ctx context.Context, o options, log *slog.Logger) (*results, error) {
	s, err := newStack(ctx, o, log)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.setup(ctx); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	res := newResults()
	if len(o.wanRTTs) > 0 {
		err := s.wanPhase(ctx, res)
		s.stopServices(res)
		return res, err
	}
	for rep := 1; rep <= o.reps; rep++ {
		log.Info("backlog", "rep", rep, "transactions", o.backlog)
		if err := s.backlog(ctx, res); err != nil {
			return nil, fmt.Errorf("backlog %d: %w", rep, err)
		}
	}
	log.Info("end-to-end lag at a steady rate, beside the serial replica", "txn_per_s", o.lagRate, "for", o.lagTime)
	if err := s.lag(ctx, res); err != nil {
		return nil, fmt.Errorf("lag phase: %w", err)
	}
	log.Info("the floor: what receiving alone costs, beside the pipeline", "txn_per_s", o.lagRate, "for", min(time.Minute, o.lagTime))
	if err := s.floor(ctx, res); err != nil {
		return nil, fmt.Errorf("floor phase: %w", err)
	}
	log.Info("catch-up after a stop, beside the serial replica", "txn_per_s", o.lagRate, "stopped_for", o.stopFor)
	if err := s.catchUpAfterStop(ctx, res); err != nil {
		return nil, fmt.Errorf("catch-up phase: %w", err)
	}
	log.Info("one big transaction", "rows", o.bigRows)
	if err := s.bigTransaction(ctx, res); err != nil {
		return nil, fmt.Errorf("big transaction: %w", err)
	}
	s.stopServices(res)
	return res, nil
}

func placementNames() string {
	var names []string
	for _, p := range placements {
		names = append(names, p.name+" ("+p.what+")")
	}
	return strings.Join(names, "; ")
}

// parseWAN reads --wan, --wan-rate and --placement.
func (o *options) parseWAN(rtts, rateCap, where string) error {
	if rtts == "" {
		return nil
	}
	for _, r := range strings.Split(rtts, ",") {
		d, err := time.ParseDuration(r)
		if err != nil || d <= 0 {
			return fmt.Errorf("--wan %s: want round trip times such as 50ms or 20ms,50ms,100ms", rtts)
		}
		o.wanRTTs = append(o.wanRTTs, d)
	}
	shape, err := wan.Parse("0s,rate=" + rateCap)
	if err != nil {
		return fmt.Errorf("--wan-rate %s: %w", rateCap, err)
	}
	o.wanRate = shape.BytesPerSec
	for _, p := range placements {
		if where == "all" || slices.Contains(strings.Split(where, ","), p.name) {
			o.placements = append(o.placements, p)
		}
	}
	if len(o.placements) == 0 {
		return fmt.Errorf("--placement %s: want all or some of %s", where, placementNames())
	}
	return nil
}
