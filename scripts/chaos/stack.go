package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/wan"
)

// stack is the private servers and services the run owns, driven through
// scripts/dev-up.sh (which starts only what is not running: after a fault
// it plays the process supervisor) and the pid files under its folder.
type stack struct {
	o   options
	log *slog.Logger
	env []string
	cfg *config.Config
	// cfgFile is the stack's config, scripts/chaos.yaml.
	cfgFile string

	primary, standby *sql.DB
	rdb              *redis.Client
	spare            *exec.Cmd
	built            bool
	// wan is the link between the sites: the producer, at the primary
	// site, reaches Kafka at the standby site through it.
	wan *wan.Link
}

func newStack(ctx context.Context, o options, log *slog.Logger) (*stack, error) {
	// The servers' addresses are in the environment scripts/chaos.sh made
	// from the stack table: the scripts the harness runs and every command
	// it starts read them from there too.
	cfgFile := filepath.Join(o.root, "scripts", "chaos.yaml")
	env := []string{"LOCKSTEP_CONFIG=" + cfgFile}
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		return nil, err
	}
	broker := cfg.Kafka.Brokers[0]
	link, err := wan.NewLink("producer-kafka", "127.0.0.1:0", broker)
	if err != nil {
		return nil, err
	}
	if err := link.Set(wanShape); err != nil {
		return nil, err
	}
	env = append(env, "LOCKSTEP_PRODUCER_SET=kafka.connect_via="+broker+"="+link.Addr)
	s := &stack{o: o, log: log, env: env, cfg: cfg, cfgFile: cfgFile, wan: link}
	// A fresh stack every run: what a previous run left must not count.
	_ = s.script(ctx, "dev-down.sh")
	if err := os.RemoveAll(o.dev); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *stack) script(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.o.root, "scripts", name), args...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// up starts whatever is not running; after the first time, with the
// binaries built then.
func (s *stack) up(ctx context.Context) error {
	err := s.script(ctx, "dev-up.sh", "--services")
	if err == nil && !s.built {
		s.built = true
		s.env = append(s.env, "LOCKSTEP_SKIP_BUILD=1")
	}
	return err
}

func (s *stack) down() {
	s.stopSpare()
	_ = s.script(context.Background(), "dev-down.sh")
	s.wan.Close()
}

func (s *stack) connect(ctx context.Context) error {
	var err error
	if s.primary, err = mysql.Open(ctx, "primary", s.cfg.Primary); err != nil {
		return err
	}
	if s.standby, err = mysql.Open(ctx, "standby", s.cfg.Standby); err != nil {
		return err
	}
	s.primary.SetConnMaxLifetime(5 * time.Second)
	s.standby.SetConnMaxLifetime(5 * time.Second)
	// Not redisconn.Open: the observer reads without retries, so that a
	// Redis restart costs it skipped samples, not seconds of backoff.
	s.rdb = redis.NewClient(&redis.Options{Addr: s.cfg.Redis.Address, MaxRetries: -1})
	return s.rdb.Ping(ctx).Err()
}

func (s *stack) close() {
	s.primary.Close()
	s.standby.Close()
	s.rdb.Close()
}

// startSpare runs a second storage-applier as the hot spare for the whole run.
func (s *stack) startSpare() error {
	dir := filepath.Join(s.o.dev, "storage-applier-spare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "storage-applier.log"))
	if err != nil {
		return err
	}
	s.spare = s.command("storage-applier")
	s.spare.Stdout, s.spare.Stderr = f, f
	return s.spare.Start()
}

// stopSpare stops the hot spare (if it still runs) and waits for it.
func (s *stack) stopSpare() {
	if s.spare != nil && s.spare.Process != nil {
		_ = s.spare.Process.Signal(syscall.SIGTERM)
		_ = s.spare.Wait()
	}
}

// command is a lockstep command (a service binary and its arguments) with
// the stack's config, pointed at its servers.
func (s *stack) command(bin string, args ...string) *exec.Cmd {
	args = append(args, "--config", s.cfgFile)
	return exec.Command(filepath.Join(s.o.dev, "bin", bin), args...)
}

// pid reads a pid file of the stack: "primary/server.pid" and the like.
func (s *stack) pid(rel string) (int, error) {
	b, err := os.ReadFile(filepath.Join(s.o.dev, rel))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// signal sends sig to the process of a pid file and, for a stop, waits
// until it is gone.
func (s *stack) signal(rel string, sig syscall.Signal, wait bool) error {
	pid, err := s.pid(rel)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, rel, pid, err)
	}
	for deadline := time.Now().Add(90 * time.Second); wait && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	if wait {
		return fmt.Errorf("%s (pid %d) still runs 90s after %s", rel, pid, sig)
	}
	return nil
}
