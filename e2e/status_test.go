package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// status tells, for each stage, where it is, how far behind and whether it
// runs: all caught up, then the cache-applier stopped, then the
// storage-applier too.
func TestStatusShowsEachStage(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 20)
	consistent(t, e, 60*time.Second)
	stages := func() map[string]status.Stage {
		t.Helper()
		ss, err := status.Report(context.Background(), e.Cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[string]status.Stage)
		for _, s := range ss {
			m[s.Name] = s
		}
		return m
	}
	s := stages()
	for _, name := range []string{"producer", "storage-applier", "cache-applier"} {
		if s[name].Behind != 0 || s[name].Lag != 0 {
			t.Errorf("caught up, %s is %d behind with lag %s: %+v", name, s[name].Behind, s[name].Lag, s[name])
		}
	}
	mustContain(t, s["storage-applier"].State, "active on standby connection")
	mustContain(t, s["cache-applier"].State, "1 member(s)")

	p.cacheApplier.stop(syscall.SIGTERM)
	writeBatch(t, e, 20, 10)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		s = stages()
		return s["storage-applier"].Behind == 0 && s["cache-applier"].Behind > 0, "the standby has not applied the new transactions"
	})
	if s["cache-applier"].Lag <= 0 {
		t.Errorf("the stopped cache-applier has lag %s", s["cache-applier"].Lag)
	}
	mustContain(t, s["cache-applier"].State, "0 member(s)")

	p.applier.stop(syscall.SIGTERM)
	writeBatch(t, e, 30, 5)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		s = stages()
		return s["producer"].Behind == 0 && s["storage-applier"].Behind > 0 && s["storage-applier"].Lag > 0, "the storage-applier does not show as behind"
	})
	mustContain(t, s["storage-applier"].State, "no active applier holds the standby lock")

	// The same as a table, from any of the binaries.
	out, err := exec.Command(filepath.Join(binDir, "cache-applier"), "status", "--config", p.cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("cache-applier status: %v\n%s", err, out)
	}
	for _, want := range []string{"STAGE", "producer", "published through GTID", "storage-applier", "cache-applier", "group " + e.Cfg.Cache.Group} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

// A standby that accounts other than lockstep's may write to (read_only
// off) is named at the storage-applier's start and in status.
func TestWritableStandbyIsWarnedAbout(t *testing.T) {
	e := newEnv(t)
	var was string
	if err := e.Standby.QueryRow("SELECT @@GLOBAL.read_only").Scan(&was); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.Standby.Exec("SET GLOBAL read_only = " + was) })
	testenv.Exec(t, e.Standby, "SET GLOBAL read_only = OFF")
	p := startPipeline(t, e)
	p.applier.waitLog("read_only is OFF")
	state := func() string {
		var stages []status.Stage
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			var err error
			stages, err = status.Report(context.Background(), e.Cfg)
			return err == nil, fmt.Sprint(err)
		})
		return stages[1].State
	}
	if s := state(); !strings.Contains(s, "warning: the standby takes writes from any account") {
		t.Fatalf("status of the storage-applier with a writable standby: %q", s)
	}
	testenv.Exec(t, e.Standby, "SET GLOBAL read_only = ON")
	if s := state(); strings.Contains(s, "warning") {
		t.Fatalf("status of the storage-applier with a read-only standby: %q", s)
	}
}
