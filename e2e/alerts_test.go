package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/internal/testtool"
)

// A real Prometheus scrapes the three services with the shipped alerting
// rules (monitoring/alerts.yml): every target is up, and stopping the
// cache-applier fires LockstepServiceDown for it, and for it alone.
func TestPrometheusAlertsOnAStoppedService(t *testing.T) {
	t.Parallel() // it mostly waits on timeouts (see the package comment)
	bin := testtool.Path(t, "prometheus", "prometheus")
	e := newEnv(t)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	p := caughtUp(t, e, 5)

	rules, err := filepath.Abs("../monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [%q]\nscrape_configs:\n", rules)
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		config += fmt.Sprintf("  - {job_name: lockstep-%s, static_configs: [{targets: [%q]}]}\n", s.name, s.metricsAddr())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	prom.Stdout, prom.Stderr = log, log
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Signal(syscall.SIGTERM)
		_ = prom.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("--- prometheus log ---\n%s", b)
		}
	})
	api := func(path string, into any) error {
		resp, err := http.Get("http://" + addr + "/api/v1/" + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(into)
	}

	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string
					Health    string
					LastError string
				}
			}
		}
		if err := api("targets", &targets); err != nil {
			return false, err.Error()
		}
		var up []string
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Health == "up" {
				up = append(up, tg.Labels["job"])
			}
		}
		return len(up) == 3, fmt.Sprintf("targets up: %v of %+v", up, targets.Data.ActiveTargets)
	})

	p.cacheApplier.stop(syscall.SIGTERM)
	// The rule waits a minute (for: 1m) before it fires.
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string
					State  string
				}
			}
		}
		if err := api("alerts", &alerts); err != nil {
			return false, err.Error()
		}
		var firing []string
		for _, a := range alerts.Data.Alerts {
			if a.State == "firing" {
				firing = append(firing, a.Labels["alertname"]+"/"+a.Labels["job"])
			}
		}
		want := "LockstepServiceDown/lockstep-cache-applier"
		if len(firing) > 1 || (len(firing) == 1 && firing[0] != want) {
			t.Fatalf("firing %v, want only %s", firing, want)
		}
		return len(firing) == 1, fmt.Sprintf("alerts %+v, want %s firing", alerts.Data.Alerts, want)
	})
}
