package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// What the services expose on the network: each listens on one TCP port,
// its metrics on 127.0.0.1 — nothing else; there /healthz and /readyz say
// whether the process and its stage run.
func TestServicesListenOnlyForMetricsOnLoopback(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	p := startPipeline(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 5)
	consistent(t, e, 60*time.Second)
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
	}
	// A stage that failed and waits to restart is not ready.
	down := *e.Cfg
	down.Standby.Address = "127.0.0.1:1" // nothing listens there
	s := start(t, writeConfig(t, &down), "storage-applier")
	s.waitLog("stage failed; restarting")
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		code, body := s.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not running: connect to standby database 127.0.0.1:1"),
			fmt.Sprintf("/readyz of a storage-applier whose standby is down = %d %q", code, body)
	})
}

// get fetches a path from the service's metrics listener, found in its log.
func (p *proc) get(path string) (int, string) {
	p.t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		p.t.Fatal(err)
	}
	m := regexp.MustCompile(`msg=metrics .*listen=(\S+)`).FindSubmatch(b)
	if m == nil {
		p.t.Fatalf("%s did not log its metrics address", p.name)
	}
	resp, err := http.Get("http://" + string(m[1]) + path)
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
