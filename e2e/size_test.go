package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// peakRSSLimitMiB is the memory bound the README states for each service.
const peakRSSLimitMiB = 256

// One primary transaction of 200,000 rows: the standby shows it all at
// once or not at all, the cache gets every row, and no service's peak
// memory passes the stated bound. Then a row with a 16 MiB BLOB, inserted
// and updated (a record with both images, 43 MiB), is carried too. The
// services run without the race detector, as users run them.
func TestHugeTransactionAndBigBlob(t *testing.T) {
	const rows = 200000
	dir, err := plainBinDir()
	if err != nil {
		t.Fatalf("build the services without -race: %v", err)
	}
	e := newEnv(t)
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules,
		config.Rule{Table: e.DB + ".big", Keys: []string{"big:{id}"}, Action: "refresh", Format: "hash"},
		config.Rule{Table: e.DB + ".blobs", Keys: []string{"blob:{id}"}, Action: "refresh", Format: "hash"},
	)
	cfgPath := writeConfig(t, e.Cfg)
	producer := start(t, cfgPath, filepath.Join(dir, "producer"))
	producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	services := []*proc{producer, start(t, cfgPath, filepath.Join(dir, "storage-applier")), start(t, cfgPath, filepath.Join(dir, "cache-applier"))}
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".big (id INT PRIMARY KEY, v VARCHAR(100))",
		"CREATE TABLE "+e.DB+".blobs (id INT PRIMARY KEY, note VARCHAR(10), b LONGBLOB)",
		fmt.Sprintf("INSERT INTO %s.big SELECT seq, CONCAT('row ', seq, REPEAT('.', 40)) FROM %s", e.DB, e.Seq(rows)),
	)
	started := time.Now()
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		n := testenv.Count(t, e.Standby, e.DB+".big")
		if n > 0 && n != rows {
			t.Fatalf("the standby shows %d of the transaction's %d rows: it was not applied atomically", n, rows)
		}
		return n == rows, fmt.Sprintf("standby has %d rows of big", n)
	})
	t.Logf("200,000-row transaction on the standby %s after its commit", time.Since(started).Round(time.Millisecond))
	consistent(t, e, 2*time.Minute)
	for _, p := range services {
		mib := peakRSSMiB(t, p)
		t.Logf("%s peak RSS %d MiB", p.name, mib)
		if mib > peakRSSLimitMiB {
			t.Errorf("%s peak RSS %d MiB under a %d-row transaction, over the %d MiB bound", p.name, mib, rows, peakRSSLimitMiB)
		}
	}

	testenv.Exec(t, e.Primary,
		// 16 MiB of every byte value, then an update that carries it twice
		"INSERT INTO "+e.DB+".blobs VALUES (1, 'new', REPEAT(X'"+allBytes()+"', 65536))",
		"UPDATE "+e.DB+".blobs SET note = 'updated' WHERE id = 1",
	)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		var note string
		_ = e.Standby.QueryRow("SELECT note FROM " + e.DB + ".blobs WHERE id = 1").Scan(&note)
		return note == "updated", fmt.Sprintf("blob row note on the standby %q", note)
	})
	consistent(t, e, 2*time.Minute)
	for _, p := range services {
		t.Logf("%s peak RSS %d MiB after the 16 MiB row", p.name, peakRSSMiB(t, p))
	}
}

// peakRSSMiB is a running service's peak resident set size (VmHWM).
func peakRSSMiB(t *testing.T, p *proc) int {
	t.Helper()
	if done, err := p.exited(); done {
		t.Fatalf("%s exited: %v", p.name, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no VmHWM for %s", p.name)
	return 0
}
