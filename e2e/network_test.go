package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// What the services expose on the network: each listens on one TCP port,
// its metrics on 127.0.0.1 — nothing else; there /healthz and /readyz say
// whether the process and its stage run (as does each binary's health
// subcommand, for container health checks), and /metrics has each stage's
// throughput, apply latency, end-to-end lag, consumer lag and errors.
func TestServicesListenOnlyForMetricsOnLoopback(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	p := caughtUp(t, e, 5)
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		got := listening(t, s.cmd.Process.Pid)
		if len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
			t.Errorf("%s listens on %v, want one 127.0.0.1 port (metrics)", s.name, got)
		}
		for path, want := range map[string]string{"/healthz": "ok", "/readyz": "running"} {
			if code, body := s.get(path); code != http.StatusOK || strings.TrimSpace(body) != want {
				t.Errorf("%s %s = %d %q, want 200 %q", s.name, path, code, body, want)
			}
		}
		if out, err := s.health(p.cfgPath); err != nil || strings.TrimSpace(out) != "running" {
			t.Errorf("%s health = %v %q, want exit 0 and running", s.name, err, out)
		}
	}
	// More rows once the cache-applier is past its start (where it may fill
	// Redis from a snapshot of the standby): these go the regular way.
	writeBatch(t, e, 5, 5)
	consistent(t, e, 60*time.Second)
	want := map[*proc][]string{
		p.producer: {`lockstep_rows_total{stage="published"}`, `lockstep_transactions_total{stage="published"}`, `lockstep_binlog_retention_seconds`},
		p.applier: {`lockstep_rows_total{stage="applied"}`, `lockstep_apply_seconds_count{stage="applied"}`,
			`lockstep_end_to_end_seconds_count{stage="applied"}`, `lockstep_consumer_lag_records{partition="0",stage="applied"}`,
			`lockstep_rows_total{stage="republished"}`},
		p.cacheApplier: {`lockstep_cache_ops_total{result="applied"}`, `lockstep_apply_seconds_count{stage="cached"}`,
			`lockstep_end_to_end_seconds_count{stage="cached"}`, `lockstep_consumer_lag_records{partition=`},
	}
	for s, names := range want {
		_, body := s.get("/metrics")
		for _, n := range names {
			switch {
			case !strings.Contains(body, n):
				t.Errorf("%s /metrics lacks %s", s.name, n)
			case !strings.Contains(n, "consumer_lag") && !hasPositive(body, n): // a lag may be 0
				t.Errorf("%s /metrics: no %s above 0", s.name, n)
			}
		}
	}
	// A stage that failed and waits to restart is not ready, and counts it.
	down := *e.Cfg
	down.Standby.Address = "127.0.0.1:1" // nothing listens there
	s := start(t, writeConfig(t, &down), "storage-applier")
	s.waitLog("stage failed; restarting")
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		code, body := s.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not running: connect to standby database 127.0.0.1:1"),
			fmt.Sprintf("/readyz of a storage-applier whose standby is down = %d %q", code, body)
	})
	if _, body := s.get("/metrics"); !hasPositive(body, `lockstep_errors_total{kind="transient"}`) {
		t.Errorf("the failing storage-applier's /metrics does not count its failures")
	}
	if out, err := s.health(p.cfgPath); err == nil || !strings.Contains(out, "is not ready: not running: connect to standby database 127.0.0.1:1") {
		t.Errorf("health of the failing storage-applier = %v %q, want a non-zero exit naming the failure", err, out)
	}
	s.stop(syscall.SIGTERM)
	if out, err := s.health(p.cfgPath); err == nil || !strings.Contains(out, "does not answer at") {
		t.Errorf("health of a stopped storage-applier = %v %q, want a non-zero exit saying it does not answer", err, out)
	}
}

// hasPositive reports whether a Prometheus text exposition has a sample
// whose name and labels start with series and whose value is above 0.
func hasPositive(body, series string) bool {
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, series)
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil && v > 0 {
				return true
			}
		}
	}
	return false
}

// metricsAddr is where the service's metrics listener listens, found in
// its log.
func (p *proc) metricsAddr() string {
	p.t.Helper()
	m := regexp.MustCompile(`msg=metrics .*listen=(\S+)`).FindStringSubmatch(p.logText())
	if m == nil {
		p.t.Fatalf("%s did not log its metrics address", p.name)
	}
	return string(m[1])
}

// health runs the service binary's health subcommand against it.
func (p *proc) health(cfgPath string) (string, error) {
	out, err := exec.Command(filepath.Join(binDir, p.name), "health", "--config", cfgPath, "--address", p.metricsAddr()).CombinedOutput()
	return string(out), err
}

// get fetches a path from the service's metrics listener.
func (p *proc) get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get("http://" + p.metricsAddr() + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// listening lists the TCP addresses a process listens on, read from /proc:
// its socket inodes, matched against the kernel's tables of TCP sockets.
func listening(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := make(map[string]bool)
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, hexAddr(f[1]))
		}
		f.Close()
	}
	return out
}

// hexAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080"
// (IPv6 addresses are left in hex).
func hexAddr(s string) string {
	ip, port, _ := strings.Cut(s, ":")
	p, _ := strconv.ParseUint(port, 16, 16)
	if len(ip) != 8 {
		return fmt.Sprintf("[%s]:%d", ip, p)
	}
	n, _ := strconv.ParseUint(ip, 16, 32)
	return fmt.Sprintf("%d.%d.%d.%d:%d", n&0xff, n>>8&0xff, n>>16&0xff, n>>24, p)
}
