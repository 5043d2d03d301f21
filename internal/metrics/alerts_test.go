package metrics

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/testtool"
)

// The alerting rules (monitoring/alerts.yml) are valid, fire as their
// promtool unit tests (monitoring/alerts_test.yml) say, and use only
// metrics the services export.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("../../monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t)
	used := regexp.MustCompile(`lockstep_[a-z_]+`).FindAllString(string(raw), -1)
	if len(used) == 0 {
		t.Fatal("the alerts use no lockstep metric")
	}
	for _, m := range used {
		if !exported[m] {
			t.Errorf("an alert uses %s, which no service exports", m)
		}
	}

	promtool := testtool.Path(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
