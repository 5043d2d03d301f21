package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// The example application (examples/users) on the real pipeline: it writes
// through the primary, reads through the standby cache and fills a miss
// from the standby; afterwards the cache still equals the standby.
func TestExampleApplication(t *testing.T) {
	e := testenv.New(t)
	e.Cfg.Cache.Rules = []config.Rule{{Table: e.DB + ".users", Keys: []string{"user:{id}"}, Action: "refresh", Format: "hash"}}
	startPipeline(t, e)
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".users (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(191) NOT NULL UNIQUE, name VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL, balance DECIMAL(14,2) NOT NULL DEFAULT 0, avatar VARBINARY(32), updated DATETIME(6) NOT NULL)")
	bin := filepath.Join(t.TempDir(), "users")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/users").CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-primary", e.Cfg.Primary.Address, "-standby", e.Cfg.Standby.Address,
		"-redis", e.Cfg.Redis.Address, "-prefix", e.Cfg.Cache.KeyPrefix, "-database", e.DB).CombinedOutput()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s", err, out)
	}
	for _, want := range []string{"read through the standby cache after", "the standby cache served the new name", "filled it from the standby through cache.Fill"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the example did not print %q:\n%s", want, out)
		}
	}
	consistent(t, e, 30*time.Second)
}
