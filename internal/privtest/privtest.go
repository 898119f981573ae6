// Package privtest holds the one rule every privileged test follows: when the
// machine cannot run it, the test skips on a developer's laptop but fails in
// CI, where NERVE_REQUIRE_PRIVILEGED=1 is set. A skipped privileged test in CI
// would be a test that asserts nothing.
package privtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nervehq/nerve/probes/targets"
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

var cgroups atomic.Int64 // made by Cgroup in this process

// Cgroup makes a cgroup v2 directory for one test, under the cgroup2 mount
// wherever it is (/sys/fs/cgroup or, on hybrid hosts, /sys/fs/cgroup/unified),
// and removes it when the test ends, moving any process left in it back to
// the root first. It returns the path relative to the hierarchy's root (what
// a `cgroup:` target names) and the directory.
func Cgroup(t testing.TB) (rel, dir string) {
	t.Helper()
	root, err := targets.CgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		Skip(t, err.Error())
	}
	// A test may ask for more than one: the count keeps them apart.
	rel = fmt.Sprintf("/nerve-test-%d-%s-%d", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"), cgroups.Add(1))
	dir = filepath.Join(root, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		Skip(t, fmt.Sprintf("cannot create a cgroup v2 directory: %v", err))
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return rel, dir
}
