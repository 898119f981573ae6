package packaging

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/internal/systemdtest"
)

// The shipped agent unit, run by a real systemd (a user manager of root's,
// see systemdtest) with its sandbox applied by systemd itself rather than
// imitated: the agent starts under ProtectSystem=strict, ProtectHome,
// ProtectKernelTunables, ProtectControlGroups, RestrictAddressFamilies,
// RestrictNamespaces, NoNewPrivileges and the unit's bounding set; attaches
// every probe; serves its metrics; keeps running without a restart; and
// stops cleanly. Only ExecStart (the test's binary, config and port) and a
// writable state directory come from a drop-in, as an operator's
// `systemctl edit` would.
func TestAgentUnitUnderSystemd(t *testing.T) {
	privtest.Root(t)
	bin := nerveBinary(t)
	unitText, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "systemd", "nerve-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := privtest.Cgroup(t)
	state := t.TempDir()
	cfg := capsConfig{state: state, cgRel: rel}.write(t)
	addr := nervetest.FreeAddr(t)
	const unitName = "nerve-agent.service"
	m := systemdtest.Start(t, map[string]string{
		unitName: string(unitText),
		unitName + ".d/test.conf": fmt.Sprintf("[Service]\nExecStart=\nExecStart=%s agent --config.file=%s --web.listen-address=%s\nReadWritePaths=%s\n",
			bin, cfg, addr, state),
	})
	m.StartUnit(t, unitName)

	a := &agentProc{addr: addr}
	deadline := time.Now().Add(60 * time.Second)
	for !healthy(addr) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not serve /healthz within 60s\n%s\n%s", m.Status(unitName), m.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	probes, ok := a.waitMetric(t, `^nerve_probe_attached\{probe="jvm"\} 1$`, 60*time.Second)
	if !ok {
		t.Fatalf("the JVM probe never attached under the unit's sandbox; probes:\n%s\n%s", grepLines(a.metrics(t), "nerve_probe_attached"), m.Status(unitName))
	}
	t.Logf("%s", probes[0])
	metrics := a.metrics(t)
	for _, p := range []string{"blockio", "runqueue", "pagefault", "jvm"} {
		if !strings.Contains(metrics, fmt.Sprintf("nerve_probe_attached{probe=%q} 1", p)) {
			t.Errorf("probe %s not attached under the unit's sandbox:\n%s", p, grepLines(metrics, "nerve_probe_attached"))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := m.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prop := func(iface, name string) any {
		t.Helper()
		p, err := conn.GetUnitTypePropertyContext(ctx, unitName, iface, name)
		if err != nil {
			t.Fatalf("%s.%s: %v", iface, name, err)
		}
		return p.Value.Value()
	}
	pid := prop("Service", "MainPID").(uint32)

	// systemd applied the sandbox: read it from the agent's own process.
	status := procStatus(t, pid)
	if status["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs %q, want 1", status["NoNewPrivs"])
	}
	// After attach the agent keeps what its configuration needs (the JVM
	// probe on uprobe_multi links and the flight recorder; caps_test.go),
	// from the unit's bounding set.
	want := []string{"bpf", "dac_read_search", "perfmon", "sys_ptrace"}
	for _, line := range []string{"CapEff", "CapBnd"} {
		if got := capNames(hexField(t, status[line])); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s %v, want %v", line, got, want)
		}
	}
	mounts := mountOptions(t, pid)
	for _, c := range []struct{ path, opt string }{
		{"/", "ro"},              // ProtectSystem=strict
		{"/proc/sys", "ro"},      // ProtectKernelTunables
		{"/sys/fs/cgroup", "ro"}, // ProtectControlGroups
		{state, "rw"},            // ReadWritePaths
	} {
		if !mounts[c.path][c.opt] {
			t.Errorf("%s in the agent's mount namespace: options %v, want %s", c.path, mounts[c.path], c.opt)
		}
	}
	// ProtectHome=yes: the agent's /home is an empty, inaccessible
	// directory (read here from outside, through its root, as root).
	if entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/root/home", pid)); len(entries) > 0 {
		t.Errorf("/home is visible to the agent: %d entries", len(entries))
	}
	if _, err := os.Stat("/home"); err == nil && mounts["/home"] == nil {
		t.Error("nothing is mounted over /home in the agent's mount namespace (ProtectHome=yes)")
	}

	// It keeps running: no restart over a few ticks.
	time.Sleep(5 * time.Second)
	if s := prop("Unit", "ActiveState").(string); s != "active" {
		t.Errorf("ActiveState %s, want active\n%s", s, m.Output())
	}
	if n := prop("Service", "NRestarts").(uint32); n != 0 {
		t.Errorf("NRestarts %d, want 0", n)
	}
	if p := prop("Service", "MainPID").(uint32); p != pid {
		t.Errorf("MainPID %d, then %d: the agent was restarted", pid, p)
	}

	// A clean stop: SIGTERM, exit status 0.
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unitName, "replace", done); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r != "done" {
		t.Errorf("stop: job result %q", r)
	}
	if r := prop("Service", "Result").(string); r != "success" {
		t.Errorf("Result %q after stop, want success (status %v)\n%s", r, prop("Service", "ExecMainStatus"), m.Output())
	}
}

// procStatus is /proc/<pid>/status as key: value.
func procStatus(t *testing.T, pid uint32) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// mountOptions maps each mount point of pid's mount namespace to its
// per-mount options; a path mounted over is the last mount's.
func mountOptions(t *testing.T, pid uint32) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		opts := map[string]bool{}
		for _, o := range strings.Split(fs[5], ",") {
			opts[o] = true
		}
		out[fs[4]] = opts
	}
	return out
}

func hexField(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	if _, err := fmt.Sscanf(s, "%x", &v); err != nil {
		t.Fatalf("not hex: %q", s)
	}
	return v
}

// healthy tells whether an agent at addr answers /healthz with 200.
func healthy(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
