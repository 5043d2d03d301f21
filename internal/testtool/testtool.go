// Package testtool finds the programs tests run beside lockstep's own
// (promtool, prometheus, docker-compose, pt-online-schema-change), which
// scripts/test.sh installs from Debian.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Path is the path of the program name, from Debian's package pkg. Where
// it is missing the test fails under LOCKSTEP_TEST_REQUIRE (as in
// scripts/test.sh, so that CI never passes without it) and skips
// otherwise, saying which package to install.
func Path(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("LOCKSTEP_TEST_REQUIRE") != "" {
		t.Fatalf("%s is not installed (Debian's %s package; scripts/test.sh installs it)", name, pkg)
	}
	t.Skipf("%s is not installed (Debian's %s package)", name, pkg)
	return ""
}
