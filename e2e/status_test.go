package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
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
	p := caughtUp(t, e, 20)
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

// Each applier measures what losing the primary site now would lose at its
// stage (the RPO: the transactions the primary committed that the stage
// does not hold, and the age of the oldest) into /metrics and status.
// Transactions outside the replicated databases are not counted once the
// producer has read past them. With the primary out of reach, /metrics and
// status keep the last value measured and say when it was measured.
func TestRPOIsMeasuredAndShown(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	e.Cfg.Metrics.RPOInterval = 200 * time.Millisecond
	p := caughtUp(t, e, 10)
	other := e.DB + "_other"
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+other, "CREATE TABLE "+other+".t (id INT PRIMARY KEY)", "INSERT INTO "+other+".t VALUES (1)")
	t.Cleanup(func() { _, _ = e.Primary.Exec("DROP DATABASE IF EXISTS " + other) })
	for s, stage := range map[*proc]string{p.applier: status.RPOApplied, p.cacheApplier: status.RPOCached} {
		testenv.Eventually(t, 20*time.Second, func() (bool, string) {
			n, ok := s.gauge("lockstep_rpo_transactions", stage)
			age, _ := s.gauge("lockstep_rpo_seconds", stage)
			return ok && n == 0 && age == 0, fmt.Sprintf("%s: caught up, with transactions outside the replicated databases last, lockstep_rpo_transactions{stage=%q} = %v (exported: %v), lockstep_rpo_seconds = %v", s.name, stage, n, ok, age)
		})
	}
	rpo := func(name string) (int, string) {
		t.Helper()
		ss, err := status.Report(context.Background(), e.Cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Name == name {
				var n int
				if _, err := fmt.Sscanf(s.RPO, "%d", &n); err != nil {
					t.Fatalf("status RPO of the %s: %q", name, s.RPO)
				}
				return n, s.RPO
			}
		}
		t.Fatalf("status has no %s", name)
		return 0, ""
	}

	p.cacheApplier.stop(syscall.SIGTERM)
	writeBatch(t, e, 10, 7)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		applied, _ := rpo("storage-applier")
		cached, text := rpo("cache-applier")
		return applied == 0 && cached == 7, fmt.Sprintf("the cache-applier stopped, 7 transactions later: RPO applied %d, cached %q", applied, text)
	})
	p.applier.stop(syscall.SIGTERM)
	writeBatch(t, e, 17, 3)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		applied, text := rpo("storage-applier")
		cached, _ := rpo("cache-applier")
		return applied == 3 && cached == 10 && strings.Contains(text, "oldest ") && !strings.Contains(text, "oldest 0s"),
			fmt.Sprintf("the storage-applier stopped too, 3 transactions later: RPO applied %q, cached %d", text, cached)
	})
	p.producer.stop(syscall.SIGTERM)
	writeBatch(t, e, 20, 2)
	if applied, text := rpo("storage-applier"); applied != 5 || strings.Contains(text, "not in the primary log yet") {
		t.Errorf("the producer stopped too, 2 transactions later: RPO applied %q, want 5 txn, the oldest in the primary log", text)
	}

	// A storage-applier that reaches the primary through a link that is
	// then cut: it applies what is published, measured 2 missing, then
	// keeps that.
	link := newLink(t, "rpo-primary", e.Cfg.Primary.Address)
	far := *e.Cfg
	far.Primary.Address = link.Addr
	far.Metrics.Listen = freeAddr(t)
	applier := start(t, writeConfig(t, &far), "storage-applier")
	applier.waitLog("msg=metrics")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n, ok := applier.gauge("lockstep_rpo_transactions", status.RPOApplied)
		return ok && n == 2, fmt.Sprintf("lockstep_rpo_transactions{stage=applied} = %v (exported: %v), want the 2 transactions not published", n, ok)
	})
	if _, text := rpo("storage-applier"); !strings.Contains(text, "2 txn, oldest <= ") || !strings.Contains(text, "not in the primary log yet") {
		t.Errorf("the 2 transactions the producer has not read: RPO applied %q", text)
	}
	cut := time.Now()
	link.Cut()
	applier.waitLog("RPO not measured")
	writeBatch(t, e, 22, 4)
	if at, _ := applier.gauge("lockstep_rpo_measured_timestamp_seconds", status.RPOApplied); at > float64(cut.UnixMilli())/1000 {
		t.Errorf("with the primary unreachable, the RPO was measured at %v, after the link was cut at %v", at, float64(cut.UnixMilli())/1000)
	}
	if n, _ := applier.gauge("lockstep_rpo_transactions", status.RPOApplied); n != 2 {
		t.Errorf("with the primary unreachable, lockstep_rpo_transactions{stage=applied} = %v, want the last measured 2", n)
	}
	ss, err := status.Report(context.Background(), &far)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, ss[0].Position, "primary unreachable")
	mustContain(t, ss[1].RPO, "? now (primary unreachable); last known: 2 txn, oldest ")
	mustContain(t, ss[1].RPO, "measured by the service at ")
}

// gauge reads one labelled series of the service's /metrics.
func (p *proc) gauge(name, stage string) (float64, bool) {
	_, body := p.get("/metrics")
	prefix := name + `{stage="` + stage + `"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// freeAddr is a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
