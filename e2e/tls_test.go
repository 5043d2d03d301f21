package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Every link over TLS with verified certificates and passwords: MariaDB
// primary and standby (REQUIRE X509: a client certificate too), Redis (TLS
// only, an ACL user), the broker (TLS, SASL SCRAM-SHA-512). The pipeline
// works; no password shows in anything the services printed or exported; a
// wrong CA, a wrong server name or a wrong password fails with an error that
// says which link and what.
func TestEverythingOverTLS(t *testing.T) {
	e, sec := testenv.NewTLS(t)
	withRules(e)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	p := caughtUp(t, e, 50)

	secrets := []string{testenv.DBPassword, testenv.RedisPassword, testenv.KafkaPassword}
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		b, err := os.ReadFile(s.log)
		if err != nil {
			t.Fatal(err)
		}
		_, metrics := s.get("/metrics")
		for _, pw := range secrets {
			if strings.Contains(string(b), pw) || strings.Contains(metrics, pw) {
				t.Errorf("%s printed or exported a password", s.name)
			}
		}
	}

	// status, over the same links, prints no password either.
	out, err := exec.Command(filepath.Join(binDir, "producer"), "status", "--config", p.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cache-applier") {
		t.Errorf("status over TLS: %v\n%s", err, out)
	}
	for _, pw := range secrets {
		if strings.Contains(string(out), pw) {
			t.Errorf("status printed a password")
		}
	}

	// SASL PLAIN works too.
	plain := *e.Cfg
	plain.Kafka.SASL = config.SASL{Mechanism: "PLAIN", User: sec.KafkaPlainUser, Password: sec.KafkaPlainPassword}
	if _, err := listTopics(t, plain.Kafka); err != nil {
		t.Errorf("SASL PLAIN: %v", err)
	}

	// Wrong CA, wrong passwords: each service says which link failed. A
	// password the database or Redis refuses stops the service (it repeats
	// on every try); the others are retried, as a certificate may be renewed.
	for _, c := range []struct {
		what    string
		service string
		change  func(*config.Config)
		want    []string
		stops   bool
	}{
		{"primary signed by another CA", "producer", func(c *config.Config) { c.Primary.TLS.CAFile = sec.Certs.Path("other-ca.pem") },
			[]string{"primary", "certificate signed by unknown authority"}, false},
		{"primary reached by a name its certificate lacks", "producer", func(c *config.Config) {
			c.Primary.Address = strings.Replace(c.Primary.Address, "127.0.0.1", "localhost", 1)
		}, []string{"connect to primary database localhost:", "certificate is not valid for any names, but wanted to match localhost"}, false},
		{"wrong standby password", "storage-applier", func(c *config.Config) { c.Standby.Password = "wrong" },
			[]string{"standby", "Access denied for user 'lockstep'", "check the user and password"}, true},
		{"broker signed by another CA", "cache-applier", func(c *config.Config) { c.Kafka.TLS.CAFile = sec.Certs.Path("other-ca.pem") },
			[]string{"reach Kafka at " + e.Cfg.Kafka.Brokers[0] + " (kafka.brokers) with TLS (kafka.tls)", "certificate signed by unknown authority"}, false},
		{"wrong SASL password", "cache-applier", func(c *config.Config) { c.Kafka.SASL.Password = "wrong" },
			[]string{`SASL SCRAM-SHA-512 as \"lockstep\" (kafka.sasl`}, false},
		{"wrong Redis password", "cache-applier", func(c *config.Config) { c.Redis.Password = "wrong" },
			[]string{"redis.address", "WRONGPASS", "check redis.user and redis.password"}, true},
	} {
		bad := *e.Cfg
		c.change(&bad)
		s := start(t, writeConfig(t, &bad), c.service)
		if c.stops {
			mustContain(t, s.waitExit(30*time.Second), c.want...)
		} else {
			for _, w := range c.want {
				s.waitLog(w)
			}
			s.stop(syscall.SIGTERM)
		}
		b, _ := os.ReadFile(s.log)
		for _, pw := range secrets {
			if strings.Contains(string(b), pw) {
				t.Errorf("%s: %s printed a password", c.what, c.service)
			}
		}
	}
}

func listTopics(t *testing.T, c config.Kafka) (kadm.TopicDetails, error) {
	opts, err := kafka.Options(c)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := kafka.Admin(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return adm.ListTopics(ctx)
}
