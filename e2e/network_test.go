package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What the services expose on the network: each listens on one TCP port,
// its metrics on 127.0.0.1 — nothing else.
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
	}
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
