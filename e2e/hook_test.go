package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/cache-applier/cacheapply"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// app stands for the application behind a hook: it records the changes it
// is handed, fails or stalls on demand, and checks that the cache does not
// hold a change yet when the change reaches it.
type app struct {
	t *testing.T
	e *testenv.Env

	mu       sync.Mutex
	failing  bool          // answer every call with an error
	stall    time.Duration // the next call takes this long
	calls    map[string]int
	early    []string // changes the cache held before the hook had them
	versions []string
}

func newApp(t *testing.T, e *testenv.Env) *app {
	return &app{t: t, e: e, calls: make(map[string]int)}
}

// handle is the application's side of one change: the cache must not hold
// the change yet.
func (a *app) handle(ctx context.Context, version string, r *schemas.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[version]++
	if a.failing {
		return errors.New("application down")
	}
	if d := a.stall; d > 0 {
		a.stall = 0
		a.mu.Unlock()
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		a.mu.Lock()
		return ctx.Err()
	}
	if r.Table == "users" && r.After != nil {
		key := a.e.Cfg.Cache.KeyPrefix + "user:" + *r.After["id"]
		if v, _ := a.e.Redis.Get(ctx, cache.VersionKey(key)).Result(); v >= version {
			a.early = append(a.early, fmt.Sprintf("%s at version %s when the hook got version %s", key, v, version))
		}
	}
	if len(a.versions) == 0 || a.versions[len(a.versions)-1] != version {
		a.versions = append(a.versions, version)
	}
	return nil
}

func (a *app) set(failing bool, stall time.Duration) {
	a.mu.Lock()
	a.failing, a.stall = failing, stall
	a.mu.Unlock()
}

// total counts every call the application got.
func (a *app) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		n += c
	}
	return n
}

// retried waits until the application got two more calls than it had at
// n: the cache-applier is calling it again, so the change it waits on is
// not in the cache (a batch's cache writes come after its hook calls).
func (a *app) retried(n int) {
	a.t.Helper()
	testenv.Eventually(a.t, 30*time.Second, func() (bool, string) {
		return a.total() >= n+2, fmt.Sprintf("the hook got %d calls, want at least %d", a.total(), n+2)
	})
}

func (a *app) attempts(version string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[version]
}

// check asserts that each change reached the application before the cache,
// once and in order, when no call failed.
func (a *app) check(wantChanges int) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.early {
		a.t.Errorf("the cache held the change before the hook: %s", x)
	}
	if len(a.versions) < wantChanges {
		a.t.Errorf("the hook saw %d changes, want at least %d", len(a.versions), wantChanges)
	}
	for i := 1; i < len(a.versions); i++ {
		if a.versions[i] <= a.versions[i-1] {
			a.t.Errorf("the hook saw version %s after %s", a.versions[i], a.versions[i-1])
		}
	}
}

// The webhook, against a real HTTP server: every change is POSTed before
// the cache holds it; a failing or stalled application is retried and the
// cache waits (on_failure=block); with on_failure=skip the cache goes on.
func TestWebhookRunsBeforeTheCache(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Kafka.StandbyPartitions = 1 // one order for the whole test
	a := newApp(t, e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r, err := schemas.Decode(body)
		if err == nil && req.Header.Get("Content-Type") != "application/json" {
			err = fmt.Errorf("content type %q", req.Header.Get("Content-Type"))
		}
		if err == nil {
			err = a.handle(req.Context(), req.Header.Get("Lockstep-Version"), r)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	e.Cfg.Cache.Hook.URL = srv.URL + "/changes"
	e.Cfg.Cache.Hook.Timeout = 500 * time.Millisecond
	e.Cfg.Cache.Hook.Retries = 1
	p := startPipeline(t, e)
	cacheReady(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 20)
	consistent(t, e, 60*time.Second)
	a.check(20 * 3)

	// The application fails: the change waits, retried, then goes through.
	a.set(true, 0)
	calls := a.total()
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".users SET name = 'blocked' WHERE id = 1")
	p.cacheApplier.waitLog("the cache waits for it (cache.hook.on_failure=block)")
	a.retried(calls)
	if got := hget(t, e, "user:1", "name"); got == "blocked" {
		t.Fatal("the cache holds a change the failing hook has not taken")
	}
	a.set(false, 0)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:1", "name") == "blocked", "user:1 not updated after the hook recovered"
	})

	// A call slower than cache.hook.timeout fails and is retried.
	a.set(false, 2*time.Second)
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".users SET name = 'stalled' WHERE id = 2")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:2", "name") == "stalled", "user:2 not updated after a stalled call"
	})
	p.cacheApplier.waitLog("hook failed; retrying")
	a.check(20*3 + 2)

	// on_failure=skip: the cache is written although the application fails.
	p.cacheApplier.stop(syscall.SIGTERM)
	e.Cfg.Cache.Hook.OnFailure = "skip"
	skipping := start(t, writeConfig(t, e.Cfg), "cache-applier")
	a.set(true, 0)
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".users SET name = 'skipped' WHERE id = 3")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:3", "name") == "skipped", "user:3 not updated under on_failure=skip"
	})
	skipping.waitLog("the cache is written without it (cache.hook.on_failure=skip)")
	consistent(t, e, 30*time.Second)
}

// The Go hook of a program that embeds the cache-applier: the same
// guarantees, in process.
func TestGoHookOfAnEmbeddingProgram(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Kafka.StandbyPartitions = 1
	e.Cfg.Cache.Hook.Retries = 0
	a := newApp(t, e)
	cfgPath := writeConfig(t, e.Cfg)
	producer := start(t, cfgPath, "producer")
	producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	start(t, cfgPath, "storage-applier")

	a.set(true, 0) // down at first: nothing reaches the cache
	cmd := cacheapply.Command(cacheapply.HookFunc(func(ctx context.Context, c cacheapply.Change) error {
		if string(c.Value) == "" || c.Record == nil {
			return errors.New("change without its record")
		}
		return a.handle(ctx, c.Version, c.Record)
	}))
	cmd.SetArgs([]string{"--config", cfgPath, "--set", "log.level=warn"})
	cmd.SetErr(os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("embedded cache-applier: %v", err)
		}
	}()

	cacheReady(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 10)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return testenv.Count(t, e.Standby, e.DB+".users") == 10, "standby lacks the users"
	})
	a.retried(a.total())
	if exists(t, e, "user:0") {
		t.Fatal("the cache was written while the Go hook failed")
	}
	a.set(false, 0)
	consistent(t, e, 60*time.Second)
	a.check(10 * 3)
}

// cacheReady waits until the cache-applier has built the (empty) cache, so
// every later change reaches the cache through the hook, not a rebuild.
func cacheReady(t *testing.T, e *testenv.Env) {
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return e.Redis.Exists(context.Background(), "lockstep:cache:"+e.Cfg.Cache.Group).Val() == 1, "the cache-applier has not written its marker"
	})
}
