package packaging

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/privtest"
)

// debTestVersion marks the package this test installs, so that a run
// killed before its cleanup is recognised and purged by the next one, and a
// nerve installed some other way is never touched.
const debTestVersion = "0.0.0~test"

// TestDebInstall builds the package as make deb does (BuildDeb), installs
// it with dpkg -i on this machine, where systemd is not PID 1, so postinst
// must do without it, and runs the agent the way the installed unit does:
// the unit's ExecStart (with a free --web.listen-address added) on the
// installed binary and configuration, under the unit's
// CapabilityBoundingSet, in a sandbox like the unit's. systemd itself cannot
// run the unit here. The agent must attach every probe, keep only the
// capabilities the shipped configuration needs, reload on the unit's
// ExecReload, serve metrics promtool finds clean, and stop cleanly. The
// package is purged at the end, whatever happened.
func TestDebInstall(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "dpkg", "dpkg-query", "promtool", "systemd-analyze", "unshare", "setpriv")
	checkNoOtherNerve(t)

	deb, err := BuildDeb(DebOptions{Root: repoRoot, Bin: nerveBinary(t), Version: debTestVersion, Arch: runtime.GOARCH, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := dpkg("--purge", "nerve"); err != nil {
			t.Errorf("dpkg --purge nerve: %v\n%s", err, out)
		}
		for _, p := range []string{"/usr/bin/nerve", "/lib/systemd/system/nerve-agent.service", "/etc/nerve/nerve.yml"} {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there after purge (%v)", p, err)
			}
		}
	})
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", deb, err, out)
	}

	out, err := exec.Command("systemd-analyze", "verify", "--man=no",
		"/lib/systemd/system/nerve-agent.service", "/lib/systemd/system/nerve-manager.service").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
	}

	u := readUnit(t, "/lib/systemd/system/nerve-agent.service")
	argv := strings.Fields(u.one(t, "ExecStart"))
	// StateDirectory=: systemd would create it; a scratch directory stands
	// in for it, mounted in the sandbox only.
	stateDir := "/var/lib/" + u.one(t, "StateDirectory")
	if _, err := os.Stat(stateDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(stateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(stateDir) })
	}
	scratch := t.TempDir()
	a, agentOut := startAgent(t, argv, u.caps(t), sandbox{rw: []string{stateDir}, binds: []string{scratch + "=" + stateDir}})
	if a == nil {
		t.Fatalf("%v exited at start:\n%s", argv, agentOut)
	}
	for _, p := range []string{"blockio", "runqueue", "pagefault", "jvm"} {
		if _, ok := a.waitMetric(t, `^nerve_probe_attached\{probe="`+p+`"\} 1$`, 0); !ok {
			t.Errorf("probe %s not attached", p)
		}
	}
	// The shipped configuration: the JVM probe on, rung 3 advising.
	checkSets(t, a, keptJVM, keptJVM)
	if _, err := os.Stat(scratch + "/journal"); err != nil {
		t.Errorf("the agent's state is not in its StateDirectory: %v", err)
	}

	reload := strings.Fields(strings.ReplaceAll(u.one(t, "ExecReload"), "$MAINPID", fmt.Sprint(a.cmd.Process.Pid)))
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %v: %v\n%s", reload, err, out)
	}
	waitLog(t, a, `msg="config reloaded" file=/etc/nerve/nerve.yml`)

	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(a.metrics(t))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("agent stop: %v", err)
	}
}

// checkNoOtherNerve fails the test when a nerve package, or files where the
// package puts its own, are on this machine other than as this test's
// leftover: installing over them would lose them. A leftover is purged.
func checkNoOtherNerve(t *testing.T) {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version} ${db:Status-Status}", "nerve").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) == 2 && f[1] != "not-installed" {
		if f[0] != debTestVersion {
			t.Fatalf("nerve %s is installed here (%s); this test would replace it", f[0], f[1])
		}
		if out, err := dpkg("--purge", "nerve"); err != nil {
			t.Fatalf("purge the last run's package: %v\n%s", err, out)
		}
	}
	for _, p := range []string{"/usr/bin/nerve", "/etc/nerve/nerve.yml", "/etc/nerve/manager.flags",
		"/lib/systemd/system/nerve-agent.service", "/lib/systemd/system/nerve-manager.service"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists and belongs to no nerve package; this test would overwrite it", p)
		}
	}
}

// dpkg runs dpkg without a terminal to ask questions on.
func dpkg(args ...string) ([]byte, error) {
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
		}
	}()
	return cmd.CombinedOutput()
}
