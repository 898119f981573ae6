// Package privtest holds the one rule every privileged test follows: when the
// machine cannot run it, the test skips on a developer's laptop but fails in
// CI, where NERVE_REQUIRE_PRIVILEGED=1 is set. A skipped privileged test in CI
// would be a test that asserts nothing.
package privtest

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequire is the variable CI sets to turn every privileged skip into a failure.
const EnvRequire = "NERVE_REQUIRE_PRIVILEGED"

// Required reports whether privileged tests must run.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Skip skips the test with the reason, or fails it when privileged tests are required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("privileged test cannot run (%s=1): %s", EnvRequire, reason)
	}
	t.Skip(reason)
}

// Root skips (or fails, in CI) unless the test runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Tools skips (or fails, in CI) unless every named program is on PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, "needs "+n+" on PATH")
		}
	}
}
