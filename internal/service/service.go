// Package service is what the three commands share around their stages:
// loading the config, the logger, signals, and the supervisor that restarts
// a stage from its durable state after a transient failure.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/metrics"
)

// permanent marks an error that a restart cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that needs an operator: the supervisor stops.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Permanentf is Permanent(fmt.Errorf(...)).
func Permanentf(format string, args ...any) error { return Permanent(fmt.Errorf(format, args...)) }

// PermanentTodo is Permanent(err) with what to do about it, if todo is set.
func PermanentTodo(err error, todo string) error {
	if todo == "" {
		return Permanent(err)
	}
	return Permanent(fmt.Errorf("%w; %s", err, todo))
}

// retry marks an error the stage works around by running again in another
// way, whatever its cause: the supervisor restarts it.
type retry struct {
	err error
	how string
}

func (r retry) Error() string { return r.err.Error() + "; " + r.how }
func (r retry) Unwrap() error { return r.err }

// Retry marks err, even a permanent one, as one the next run of the stage
// works around as how says: the supervisor restarts the stage.
func Retry(err error, how string) error { return retry{err, how} }

// IsPermanent reports whether err, or an error it wraps, is permanent, and
// not marked to be retried.
func IsPermanent(err error) bool {
	var r retry
	if errors.As(err, &r) {
		return false
	}
	var p permanent
	return errors.As(err, &p)
}

// Supervise runs step until ctx ends or step fails permanently. A transient
// failure is logged and step runs again after a backoff that doubles from
// 500 ms up to 30 s, and starts over once a run has lasted a minute. Each run
// starts from durable state (topics and checkpoints), so a restart loses and
// repeats nothing.
func Supervise(ctx context.Context, log *slog.Logger, step func(context.Context) error) error {
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		metrics.SetStage(nil)
		err := step(ctx)
		if ctx.Err() != nil {
			metrics.SetStage(errors.New("stopping"))
			return nil
		}
		metrics.SetStage(err)
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			metrics.Errors.WithLabelValues("permanent").Inc()
			return err
		}
		metrics.Errors.WithLabelValues("transient").Inc()
		if time.Since(started) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		log.Warn("stage failed; restarting from the durable position", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Logger builds the process logger from the config.
func Logger(c config.Log, name string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level))) // validated already
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("service", name)
}

// Stage is one life of a service: it runs until ctx ends or it fails.
type Stage func(ctx context.Context, cfg *config.Config, log *slog.Logger) error

// Beside is work a service does beside its stage for the whole life of
// the process, across the stage's restarts (e.g. measuring its RPO).
type Beside func(ctx context.Context, cfg *config.Config, log *slog.Logger)

// Command builds a service's root command: --config and --set flags, the
// config loaded and logged (secrets redacted), and the stage run under
// Supervise with a context that SIGTERM and SIGINT cancel, each beside
// in a goroutine of its own.
func Command(name, short string, stage Stage, beside ...Beside) *cobra.Command {
	return withConfig(name, short, false, func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
		log := Logger(cfg.Log, name)
		log.Info("starting", "config", fmt.Sprintf("%+v", cfg.Redacted()))
		for _, w := range cfg.Warnings() {
			log.Warn(w)
		}
		gcSettings()
		if err := metrics.Serve(ctx, cfg.MetricsAddress(name), log); err != nil {
			return err
		}
		for _, b := range beside {
			go b(ctx, cfg, log)
		}
		err := Supervise(ctx, log, func(ctx context.Context) error { return stage(ctx, cfg, log) })
		if err != nil {
			log.Error("stopped", "err", err)
			return err
		}
		log.Info("stopped cleanly")
		return nil
	})
}

// Subcommand is a one-shot command beside a service (e.g. health): the
// same config flags; fn writes its report to standard output, within 2
// minutes.
func Subcommand(name, short string, fn func(ctx context.Context, cfg *config.Config, out io.Writer) error) *cobra.Command {
	return subcommand(name, short, false, fn)
}

// Overview is Subcommand for a command that, with a config of shards that
// names none, reports on every shard (status).
func Overview(name, short string, fn func(ctx context.Context, cfg *config.Config, out io.Writer) error) *cobra.Command {
	return subcommand(name, short, true, fn)
}

func subcommand(name, short string, anyShard bool, fn func(ctx context.Context, cfg *config.Config, out io.Writer) error) *cobra.Command {
	return withConfig(name, short, anyShard, func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return fn(ctx, cfg, cmd.OutOrStdout())
	})
}

// Task is a one-shot job beside a service that may run long (a snapshot,
// a rebuild, a verify): the same config flags, no time limit; SIGTERM and
// SIGINT stop it. fn writes its report to standard output and its progress
// to standard error.
func Task(name, short string, fn func(ctx context.Context, cfg *config.Config, out, progress io.Writer) error) *cobra.Command {
	return withConfig(name, short, false, func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
		return fn(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
	})
}

// From is where a command starts reading a topic: its --from-offset or
// its --from-time flag, exactly one of them.
type From struct {
	Offset int64     // -1 unless --from-offset is given
	Time   time.Time // zero unless --from-time is given
	text   string
}

// FromFlags adds --from-offset and --from-time to cmd, with what each means
// for it.
func FromFlags(cmd *cobra.Command, offsetUsage, timeUsage string) *From {
	f := &From{}
	cmd.Flags().Int64Var(&f.Offset, "from-offset", -1, offsetUsage)
	cmd.Flags().StringVar(&f.text, "from-time", "", timeUsage+": RFC 3339 or a duration ago (2h)")
	return f
}

// Parse checks that exactly one of the flags is given and reads the time:
// RFC 3339, or a duration ago.
func (f *From) Parse() error {
	if (f.Offset < 0) == (f.text == "") {
		return errors.New("give one of --from-offset N or --from-time (RFC 3339, or a duration ago such as 2h)")
	}
	if f.text == "" {
		return nil
	}
	if d, err := time.ParseDuration(f.text); err == nil {
		f.Time = time.Now().Add(-d)
		return nil
	}
	t, err := time.Parse(time.RFC3339, f.text)
	if err != nil {
		return fmt.Errorf("--from-time %q: want RFC 3339 (2026-11-27T04:00:00Z) or a duration ago (2h)", f.text)
	}
	f.Time = t
	return nil
}

// withConfig is a command with the --config and --set flags whose run gets
// the loaded config and a context that SIGTERM and SIGINT cancel.
func withConfig(name, short string, anyShard bool, run func(context.Context, *cobra.Command, *config.Config) error) *cobra.Command {
	var file string
	var sets []string
	cmd := &cobra.Command{
		Use:           name,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, sets)
			if err == nil && !anyShard {
				err = cfg.OneSource()
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return run(ctx, cmd, cfg)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", os.Getenv("LOCKSTEP_CONFIG"), "YAML config file (env LOCKSTEP_CONFIG)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a config key, e.g. --set kafka.brokers=host:9092 (repeatable)")
	return cmd
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise: the garbage collector works harder as the heap nears it
// instead of letting it double, which keeps a service passing a very large
// row (tens of MiB) near the documented 256 MiB bound. It is not a cap.
const defaultMemoryLimit = 200 << 20

// defaultGCPercent is GOGC unless the environment sets it. The services'
// live heaps are small (a batch of records), so below the soft limit the
// collector may let the heap grow to three times it rather than two: in
// four pairs of benchmark runs it cut their CPU per transaction by 3-10%
// and mostly the lag's tail with it, for 13-46 MiB more peak RSS.
const defaultGCPercent = 200

func gcSettings() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// Main runs a root command and exits non-zero on error.
func Main(cmd *cobra.Command) {
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
		os.Exit(1)
	}
}
