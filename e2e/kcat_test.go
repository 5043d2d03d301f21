package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/schemas"
)

// The README's kcat commands work against the embedded broker: kcat lists
// both topics and reads records that are valid lockstep records, with
// their headers.
func TestKcatReadsBothTopics(t *testing.T) {
	e := newEnv(t)
	caughtUp(t, e, 5)
	broker := e.Cfg.Kafka.Brokers[0]
	kcat := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("kcat", append([]string{"-b", broker, "-q"}, args...)...).Output()
		if err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mustContain(t, kcat("-L"), `topic "`+e.Cfg.Kafka.PrimaryTopic+`"`, `topic "`+e.Cfg.Kafka.StandbyTopic+`" with 4 partitions`)
	for _, topic := range []string{e.Cfg.Kafka.PrimaryTopic, e.Cfg.Kafka.StandbyTopic} {
		lines := strings.Split(strings.TrimSpace(kcat("-C", "-t", topic, "-e", "-f", "%s\n")), "\n")
		if len(lines) < 15 { // 5 transactions of 3 rows, and the DDL
			t.Fatalf("kcat read %d records of %s", len(lines), topic)
		}
		for _, l := range lines {
			if _, err := schemas.Decode([]byte(l)); err != nil {
				t.Fatalf("kcat read a record of %s that does not decode: %v\n%s", topic, err, l)
			}
		}
	}
	mustContain(t, kcat("-C", "-t", e.Cfg.Kafka.PrimaryTopic, "-f", "%h\n", "-o", "-3", "-e"), "gtid=", "op=", "table=")
}
