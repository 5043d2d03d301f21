package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The Grafana dashboard (monitoring/grafana-dashboard.json) must chart only
// metrics the services export, and every one of them.
func TestDashboardChartsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../../monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	charted := map[string]bool{}
	name := regexp.MustCompile(`lockstep_[a-z_]+`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					m = strings.TrimSuffix(m, suffix)
				}
				charted[m] = true
			}
		}
	}
	exported := exportedNames(t)
	for m := range charted {
		if !exported[m] {
			t.Errorf("the dashboard charts %s, which no service exports", m)
		}
	}
	var missing []string
	for m := range exported {
		if !charted[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard does not chart %v", missing)
	}
}

// exportedNames are the names of the metrics the services export.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range []prometheus.Collector{Rows, Transactions, CacheOps, HookCalls, Lag, EndToEnd, Apply, ConsumerLag, Errors,
		RPOTransactions, RPOSeconds, RPOMeasured, BinlogOlder, BinlogSecondsLeft, BinlogBytesLeft, BinlogRisk,
		ConsistencyRatio, ConsistencyChecks, CacheAhead} {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		exported[fq.FindStringSubmatch(d.String())[1]] = true
	}
	if len(exported) < 19 {
		t.Fatalf("found %d exported metrics, want the 19 described", len(exported))
	}
	return exported
}
