package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
)

var services = []string{"producer", "storage-applier", "cache-applier"}

// replica is a MariaDB replica of the primary, applying in one mode.
type replica struct {
	mode    string
	threads int // slave_parallel_threads
	db      *sql.DB
	stopped bool // for the rest of the run
}

// stack is the servers scripts/bench.sh started and the services the
// benchmark starts and stops itself, one stage at a time.
type stack struct {
	o   options
	log *slog.Logger
	cfg *config.Config

	primary, standby *sql.DB
	replicas         []replica
	rdb              redis.UniversalClient
	cluster          redis.UniversalClient // with --redis-cluster
	opts             []kgo.Opt
	adm              *kadm.Client
	running          map[string]*exec.Cmd
	profiled         map[string]bool
	// siteEnv is each service's environment for where it runs in the WAN
	// phase: its connections that cross the WAN go through the links.
	siteEnv map[string][]string
	started bool // the producer ran once (later runs resume from the primary log)
}

func newStack(ctx context.Context, o options, log *slog.Logger) (*stack, error) {
	cfg, err := config.Load(o.config, nil)
	if err != nil {
		return nil, err
	}
	s := &stack{o: o, log: log, cfg: cfg, running: map[string]*exec.Cmd{}, profiled: map[string]bool{}}
	if s.primary, err = mysql.Open(ctx, "primary", cfg.Primary); err != nil {
		return nil, err
	}
	if s.standby, err = mysql.Open(ctx, "standby", cfg.Standby); err != nil {
		return nil, err
	}
	for i, mode := range []string{"serial", "conservative", "optimistic"} {
		r := replica{mode: mode, threads: 4}
		if mode == "serial" {
			r.threads = 0
		}
		addr := fmt.Sprintf("127.0.0.1:%d", o.replicaPort+i)
		if r.db, err = mysql.Open(ctx, "replica", config.Database{Address: addr, User: "root"}); err != nil {
			return nil, err
		}
		s.replicas = append(s.replicas, r)
	}
	if s.rdb, err = redisconn.Open(ctx, cfg.Redis); err != nil {
		return nil, err
	}
	if o.redisCluster != "" {
		if s.cluster, err = redisconn.Open(ctx, config.Redis{Address: o.redisCluster, Cluster: true}); err != nil {
			return nil, err
		}
	}
	if s.opts, err = kafka.Connect(ctx, cfg.Kafka); err != nil {
		return nil, err
	}
	if s.adm, err = kafka.Admin(s.opts); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *stack) close() {
	for name := range s.running {
		s.stop(name, nil)
	}
	s.adm.Close()
	s.rdb.Close()
	if s.cluster != nil {
		s.cluster.Close()
	}
	for _, r := range s.replicas {
		r.db.Close()
	}
	s.standby.Close()
	s.primary.Close()
}

// setup loads sysbench's tables on the primary, points the replicas at it,
// and lets them and lockstep carry the tables over.
func (s *stack) setup(ctx context.Context) error {
	if _, err := s.primary.ExecContext(ctx, `CREATE DATABASE sbtest;
		CREATE TABLE sbtest.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL)`); err != nil {
		return err
	}
	if _, err := s.sysbench(ctx, "prepare"); err != nil {
		return err
	}
	host, port, _ := strings.Cut(s.cfg.Primary.Address, ":")
	for _, r := range s.replicas {
		// Without threads the mode does not apply; conservative is valid.
		mode := strings.Replace(r.mode, "serial", "conservative", 1)
		if _, err := r.db.ExecContext(ctx, fmt.Sprintf(`SET GLOBAL slave_parallel_threads=%d; SET GLOBAL slave_parallel_mode='%s';
			CHANGE MASTER TO master_host='%s', master_port=%s, master_user='root', master_use_gtid=slave_pos; START SLAVE`,
			r.threads, mode, host, port)); err != nil {
			return fmt.Errorf("start the %s replica: %w", r.mode, err)
		}
	}
	if err := s.startAll(); err != nil {
		return err
	}
	if err := s.drain(ctx); err != nil {
		return err
	}
	if s.cluster == nil {
		return nil
	}
	// The cluster's cache is built (from the standby) and drained here, so
	// that a backlog measures only the backlog.
	if err := s.start(clusterCache); err != nil {
		return err
	}
	defer s.stop(clusterCache, nil)
	return s.until(ctx, "cache on the Redis Cluster", func(ctx context.Context) (bool, error) {
		n, err := s.cacheLeft(ctx, clusterGroup(s.cfg))
		return n == 0, err
	})
}

// drain waits until the replicas and every stage hold all the primary wrote.
func (s *stack) drain(ctx context.Context) error {
	head, err := s.head(ctx)
	if err != nil {
		return err
	}
	checks := map[string]func(context.Context) (bool, error){
		"standby": func(ctx context.Context) (bool, error) { n, err := s.applied(ctx); return n >= head, err },
		"cache": func(ctx context.Context) (bool, error) {
			n, err := s.cacheLeft(ctx, s.cfg.Cache.Group)
			return n == 0, err
		},
	}
	for _, r := range s.replicas {
		if r.stopped {
			continue
		}
		checks[r.mode+" replica"] = func(ctx context.Context) (bool, error) {
			n, err := gtidSeq(ctx, r.db, "SELECT @@gtid_slave_pos")
			return n >= head, err
		}
	}
	for name, done := range checks {
		if err := s.until(ctx, name, done); err != nil {
			return fmt.Errorf("%w (GTID 0-1-%d)", err, head)
		}
	}
	return nil
}

// until waits up to 10 minutes for done; its errors are "not yet" until
// then (a topic may not exist yet).
func (s *stack) until(ctx context.Context, name string, done func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ok, err := done(ctx)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s did not catch up within 10 minutes (last error: %v; logs under %s)", name, err, s.o.dev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sysbench runs oltp_write_only on the primary with extra arguments and
// returns its output.
func (s *stack) sysbench(ctx context.Context, cmd string, extra ...string) (string, error) {
	host, port, _ := strings.Cut(s.cfg.Primary.Address, ":")
	args := append([]string{"oltp_write_only", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=root", "--mysql-db=sbtest", "--tables=4", fmt.Sprintf("--table-size=%d", s.o.tableSize)}, extra...)
	out, err := exec.CommandContext(ctx, "sysbench", append(args, cmd)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sysbench %s: %w\n%s", cmd, err, out)
	}
	return string(out), nil
}

var sysbenchRate = regexp.MustCompile(`transactions:\s+(\d+)\s+\(([\d.]+) per sec`)

// clusterCache is the cache-applier that writes to the Redis Cluster
// (--redis-cluster), in a consumer group of its own.
const clusterCache = "cache-applier-cluster"

func clusterGroup(cfg *config.Config) string { return cfg.Cache.Group + "-cluster" }

// start runs a service with the benchmark's config; its output goes to
// <dev>/<service>/<service>.log.
func (s *stack) start(name string) error {
	dir := filepath.Join(s.o.dev, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	args := []string{"--config", s.o.config}
	if name == "producer" && !s.started {
		args = append(args, "--from-start") // the primary is new: carry it from its first binlog
		s.started = true
	}
	bin, env := name, append(os.Environ(), s.siteEnv[name]...)
	if name == clusterCache {
		bin = "cache-applier"
		env = append(env, "LOCKSTEP_REDIS_ADDRESS="+s.o.redisCluster, "LOCKSTEP_REDIS_CLUSTER=true", "LOCKSTEP_CACHE_GROUP="+clusterGroup(s.cfg))
	}
	cmd := exec.Command(filepath.Join(s.o.dev, "bin", bin), args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	if s.o.profile != "" && slices.Contains(services, name) {
		cmd.Env = append(cmd.Env, "LOCKSTEP_METRICS_LISTEN="+s.profileAddr(name))
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.running[name] = cmd
	return nil
}

// profileAddr is where a service serves /debug/pprof with --profile.
func (s *stack) profileAddr(name string) string {
	return fmt.Sprintf("127.0.0.1:%d", s.o.replicaPort+3+slices.Index(services, name))
}

// profileCPU saves a CPU profile of a service, once per service and
// phase, to DIR/<service>[-<phase>].pprof, starting after the start-up (the
// three of services: the cluster's cache-applier serves no profile).
func (s *stack) profileCPU(name, phase string, d time.Duration) {
	file := name
	if phase != "" {
		file += "-" + phase
	}
	if s.o.profile == "" || s.profiled[file] || !slices.Contains(services, name) {
		return
	}
	s.profiled[file] = true
	go func() {
		time.Sleep(300 * time.Millisecond)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.profileAddr(name), int(d/time.Second))
		resp, err := http.Get(url)
		if err == nil {
			defer resp.Body.Close()
			var f *os.File
			if f, err = os.Create(filepath.Join(s.o.profile, file+".pprof")); err == nil {
				defer f.Close()
				_, err = io.Copy(f, resp.Body)
			}
		}
		if err != nil {
			s.log.Warn("CPU profile", "service", name, "phase", phase, "err", err)
		}
	}()
}

// stop ends a service with SIGTERM, first noting its peak memory.
func (s *stack) stop(name string, res *results) {
	cmd := s.running[name]
	if cmd == nil {
		return
	}
	if res != nil {
		if kb, err := peakRSS(cmd.Process.Pid); err == nil {
			res.peak(name, kb)
		} else {
			s.log.Warn("read peak memory", "service", name, "err", err)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	delete(s.running, name)
}

// startAll starts the services not running.
func (s *stack) startAll() error {
	for _, name := range services {
		if s.running[name] == nil {
			if err := s.start(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stack) stopServices(res *results) {
	for _, name := range services {
		s.stop(name, res)
	}
}

// peakRSS is a process's peak resident memory (VmHWM), in KiB.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// head is the sequence number of the primary's last transaction.
func (s *stack) head(ctx context.Context) (int64, error) {
	return gtidSeq(ctx, s.primary, "SELECT @@GLOBAL.gtid_binlog_pos")
}

// applied is the sequence number of the last transaction on the standby.
func (s *stack) applied(ctx context.Context) (int64, error) {
	cp, err := mysql.Checkpoint(ctx, s.standby, s.cfg.Applier.Name)
	if err != nil {
		return 0, err
	}
	return parseSeq(cp.GTIDs)
}

// gtidSeq reads a GTID position of the one replication domain the private
// primary has and returns its sequence number.
func gtidSeq(ctx context.Context, db *sql.DB, query string) (int64, error) {
	var pos string
	if err := db.QueryRowContext(ctx, query).Scan(&pos); err != nil {
		return 0, err
	}
	return parseSeq(pos)
}

// parseSeq counts the transactions of a GTID position (or a GTID): on the
// benchmark's primary, of one domain, its last sequence number.
func parseSeq(pos string) (int64, error) {
	set, err := mysql.ParseGTIDSet(pos)
	if err != nil {
		return 0, err
	}
	return mysql.GTIDSet{}.Behind(set)
}

// cacheLeft counts the standby-log offsets a cache group has not committed
// (0 when it is through every record).
func (s *stack) cacheLeft(ctx context.Context, group string) (int64, error) {
	ends, err := s.endOffsets(ctx, s.cfg.Kafka.StandbyTopic)
	if err != nil {
		return 0, err
	}
	committed, err := s.adm.FetchOffsetsForTopics(ctx, group, s.cfg.Kafka.StandbyTopic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return 0, err
	}
	var left int64
	for p, end := range ends {
		at := int64(0)
		if o, ok := committed.Lookup(s.cfg.Kafka.StandbyTopic, p); ok {
			at = max(o.At, 0)
		}
		// The end is past the commit marker of the last Kafka transaction,
		// which no consumer commits: one offset left is none.
		if d := end - at; d > 1 {
			left += d
		}
	}
	return left, nil
}

// endOffsets lists a topic's last stable offsets, by partition.
func (s *stack) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	ends, err := s.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, o := range ends[topic] {
		out[p] = o.Offset
	}
	return out, nil
}
