package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// binDir holds the three service binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := buildServices(raceEnabled)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the services: %v\n", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if plain.dir != "" && plain.dir != dir {
		os.RemoveAll(plain.dir)
	}
	os.Exit(code)
}

// buildServices builds the three services into a new folder.
func buildServices(race bool) (string, error) {
	dir, err := os.MkdirTemp("", "lockstep-e2e-bin")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../producer", "../storage-applier", "../cache-applier")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return dir, build.Run()
}

// plain holds the services built without the race detector, whose memory
// use is the one users see; built on first use.
var plain struct {
	once sync.Once
	dir  string
	err  error
}

func plainBinDir() (string, error) {
	plain.once.Do(func() {
		plain.dir, plain.err = binDir, nil
		if raceEnabled {
			plain.dir, plain.err = buildServices(false)
		}
	})
	return plain.dir, plain.err
}

// proc is one running service.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// writeConfig writes the test's config as the YAML file the services read.
func writeConfig(t testing.TB, cfg *config.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lockstep.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs a service binary (a name in binDir, or a path) with the config
// file; its log goes to a file that is printed when the test fails.
func start(t testing.TB, cfgPath, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, cfgPath, name, nil, args...)
}

// startEnv is start with extra environment variables (e.g. a crash point).
func startEnv(t testing.TB, cfgPath, name string, env []string, args ...string) *proc {
	t.Helper()
	bin := name
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(binDir, name)
	}
	name = filepath.Base(name)
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--config", cfgPath, "--set", "log.level=debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// The config file is the whole truth: no LOCKSTEP_* from the caller.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOCKSTEP_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("--- last lines of %s ---\n%s", name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	return p
}

// stop signals the service and waits for it to exit.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not exit within 30s of %s", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended and its exit error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// logText is what the service has logged so far.
func (p *proc) logText() string {
	p.t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until the service's log contains text.
func (p *proc) waitLog(text string) {
	p.t.Helper()
	p.waitLogWithin(text, 30*time.Second)
}

// waitLogWithin waits up to within until the service's log contains text.
func (p *proc) waitLogWithin(text string, within time.Duration) {
	p.t.Helper()
	testenv.Eventually(p.t, within, func() (bool, string) {
		if done, err := p.exited(); done {
			return false, fmt.Sprintf("%s exited (%v) before logging %q", p.name, err, text)
		}
		f, err := os.Open(p.log)
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			if strings.Contains(sc.Text(), text) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s has not logged %q", p.name, text)
	})
}

// waitTailing waits until the primary streams its binlog to the producer
// p (a client registered with its server id), so that every later write
// on the primary is carried.
func (p *proc) waitTailing(primary *sql.DB, serverID uint32) {
	p.t.Helper()
	testenv.Eventually(p.t, 30*time.Second, func() (bool, string) {
		if done, err := p.exited(); done {
			return false, fmt.Sprintf("%s exited (%v) before it tailed the binlog", p.name, err)
		}
		ids := testenv.BinlogClients(p.t, primary)
		return slices.Contains(ids, serverID), fmt.Sprintf("the primary streams its binlog to server ids %v, not yet to %s's %d", ids, p.name, serverID)
	})
}

// stopTailing stops the producer p and waits until the primary no longer
// lists it (its dump thread notices within a heartbeat): waitTailing on a
// producer started after it then sees that one's registration.
func (p *proc) stopTailing(primary *sql.DB, serverID uint32) {
	p.t.Helper()
	p.stop(syscall.SIGTERM)
	testenv.Eventually(p.t, 30*time.Second, func() (bool, string) {
		ids := testenv.BinlogClients(p.t, primary)
		return !slices.Contains(ids, serverID), fmt.Sprintf("the primary still streams its binlog to server id %d", serverID)
	})
}

// pipeline is the three services of one test.
type pipeline struct {
	cfgPath                         string
	producer, applier, cacheApplier *proc
}

// startPipeline starts the three services and returns once the producer
// tails the binlog, so every later write on the primary is carried.
func startPipeline(t testing.TB, e *testenv.Env) *pipeline {
	t.Helper()
	p := &pipeline{cfgPath: writeConfig(t, e.Cfg)}
	p.producer = start(t, p.cfgPath, "producer")
	p.producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	p.applier = start(t, p.cfgPath, "storage-applier")
	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	return p
}

// caughtUp starts the pipeline, creates the tables, writes n transactions
// and waits until the standby and the cache hold them: where most tests
// begin.
func caughtUp(t *testing.T, e *testenv.Env, n int) *pipeline {
	t.Helper()
	p := startPipeline(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, n)
	consistent(t, e, 60*time.Second)
	return p
}

// run runs a command of a service binary (args[0]) with the pipeline's
// config and returns its output; it fails the test unless the command
// succeeds or fails as wantOK says.
func (p *pipeline) run(t testing.TB, wantOK bool, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--config", p.cfgPath)...).CombinedOutput()
	if (err == nil) != wantOK {
		t.Fatalf("%s: error %v, want ok %v:\n%s", strings.Join(args, " "), err, wantOK, out)
	}
	return string(out)
}

// records reads every committed record of a topic.
func records(t testing.TB, e *testenv.Env, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	err := kafka.ScanTopic(ctx, clientOpts(t, e), topic, func(kr *kgo.Record, _ *schemas.Record) error {
		out = append(out, kr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func clientOpts(t testing.TB, e *testenv.Env) []kgo.Opt {
	opts, err := kafka.Options(e.Cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// admin is an admin client of the test's broker, closed when the test ends.
func admin(t testing.TB, e *testenv.Env) *kadm.Client {
	adm, err := kafka.Admin(clientOpts(t, e))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return adm
}
