package config

import (
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/testtool"
	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Env      map[string]string `yaml:"x-lockstep-env"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Build       struct {
			Args map[string]string `yaml:"args"`
		} `yaml:"build"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// docker-compose.yml cannot run on these machines (no Docker engine), so
// this test checks what it names against the code: every LOCKSTEP_ variable
// is a config key, the topics are the config's, each service address points
// at a container port that the container publishes, and each built service
// exists. Then docker-compose itself validates the file, when installed.
func TestComposeFileMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	example, err := Load("../../lockstep.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Env) == 0 {
		t.Fatal("no x-lockstep-env block")
	}
	for k, v := range f.Env {
		key := strings.ToLower(strings.TrimPrefix(k, "LOCKSTEP_"))
		section, rest, _ := strings.Cut(key, "_")
		if !Known(section + "." + rest) {
			t.Errorf("%s is not a config key (%s.%s)", k, section, rest)
		}
		switch k {
		case "LOCKSTEP_KAFKA_PRIMARY_TOPIC":
			if v != example.Kafka.PrimaryTopic {
				t.Errorf("compose primary topic %s, config %s", v, example.Kafka.PrimaryTopic)
			}
		case "LOCKSTEP_KAFKA_STANDBY_TOPIC":
			if v != example.Kafka.StandbyTopic {
				t.Errorf("compose standby topic %s, config %s", v, example.Kafka.StandbyTopic)
			}
		case "LOCKSTEP_KAFKA_BROKERS", "LOCKSTEP_PRIMARY_ADDRESS", "LOCKSTEP_STANDBY_ADDRESS", "LOCKSTEP_REDIS_ADDRESS":
			host, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s = %s: %v", k, v, err)
			}
			svc, ok := f.Services[host]
			if !ok {
				t.Errorf("%s = %s names no compose service", k, v)
				continue
			}
			if !publishes(svc.Ports, port) {
				t.Errorf("%s = %s, but service %s publishes %v", k, v, host, svc.Ports)
			}
		}
	}
	// The host side of the published ports is what the example config and
	// the dev stack use, so the same config reaches either stack.
	for svc, addr := range map[string]string{"primary": example.Primary.Address, "standby": example.Standby.Address, "redis": example.Redis.Address, "kafka": example.Kafka.Brokers[0]} {
		_, port, _ := net.SplitHostPort(addr)
		found := false
		for _, p := range f.Services[svc].Ports {
			found = found || strings.HasPrefix(p, port+":")
		}
		if !found {
			t.Errorf("service %s publishes %v, the example config expects host port %s", svc, f.Services[svc].Ports, port)
		}
	}
	for name, svc := range f.Services {
		if s := svc.Build.Args["SERVICE"]; s != "" {
			if s != name {
				t.Errorf("compose service %s builds %s", name, s)
			}
			if _, err := os.Stat("../../" + s + "/main.go"); err != nil {
				t.Errorf("compose builds %s, which is not a service of this repo: %v", s, err)
			}
			if !slices.Contains(svc.Healthcheck.Test, "health") {
				t.Errorf("compose service %s has no health check through its health subcommand: %v", name, svc.Healthcheck.Test)
			}
		} else if len(svc.Healthcheck.Test) == 0 {
			t.Errorf("compose service %s has no health check (the services wait for it)", name)
		}
	}
	// The services' image runs as a user of its own, not root.
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindSubmatch(docker); user == nil || strings.HasPrefix(string(user[1]), "root") || strings.HasPrefix(string(user[1]), "0") {
		t.Errorf("the Dockerfile's final image runs as root (want a USER line naming another user)")
	}

	bin := testtool.Path(t, "docker-compose", "docker-compose")
	out, err := exec.Command(bin, "-f", "../../docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "-f", "../../docker-compose.yml", "-f", "../../docker-compose.mysql.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config with the MySQL override: %v\n%s", err, out)
	}
}

// The MySQL override replaces the two databases of docker-compose.yml and
// nothing else: each service it names is one of the base file's, keeps the
// base's ports (those the config points at), and is checked for health.
func TestComposeMySQLOverride(t *testing.T) {
	var base, over composeFile
	for path, f := range map[string]*composeFile{"../../docker-compose.yml": &base, "../../docker-compose.mysql.yml": &over} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if len(over.Services) != 2 {
		t.Errorf("the override names %d services, want the primary and the standby", len(over.Services))
	}
	for name, svc := range over.Services {
		if _, ok := base.Services[name]; !ok {
			t.Errorf("the override names %s, which docker-compose.yml does not have", name)
		}
		if len(svc.Ports) > 0 {
			t.Errorf("the override changes %s's ports %v: the config expects the base file's", name, svc.Ports)
		}
		if !strings.HasPrefix(svc.Image, "mysql:") || len(svc.Healthcheck.Test) == 0 {
			t.Errorf("override service %s: image %q, health check %v; want MySQL with a health check", name, svc.Image, svc.Healthcheck.Test)
		}
	}
}

// publishes reports whether "host:container" entries include the container port.
func publishes(ports []string, port string) bool {
	for _, p := range ports {
		if strings.HasSuffix(p, ":"+port) {
			return true
		}
	}
	return false
}
