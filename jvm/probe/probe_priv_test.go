//go:build 386 || amd64

package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
)

// recorder keeps the pauses the probe reports, by pid.
type recorder struct {
	mu     sync.Mutex
	pauses map[int][]Pause
}

func (r *recorder) add(p Pause) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pauses[p.PID] = append(r.pauses[p.PID], p)
}

func (r *recorder) of(pid int, k Kind) []Pause {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Pause
	for _, p := range r.pauses[pid] {
		if p.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

func startProbe(t *testing.T) (*Probe, *recorder) {
	t.Helper()
	return startProbeWith(t, Config{})
}

// startProbeWith starts a probe on cfg, with a fast scan and a recorder of
// every pause.
func startProbeWith(t *testing.T, cfg Config) (*Probe, *recorder) {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "java", "javac")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{pauses: map[int][]Pause{}}
	cfg.Scan, cfg.OnPause = 50*time.Millisecond, rec.add
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), cfg)
	if err != nil {
		privtest.Skip(t, fmt.Sprintf("JVM probe cannot load here: %v", err))
	}
	t.Cleanup(func() { p.Close() })
	return p, rec
}

func compileOwn(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("javac", "-d", dir, "testdata/SafepointsAfter.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
}

func waitWatched(t *testing.T, p *Probe, pid int) JVM {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, j := range p.JVMs() {
			if j.PID == pid {
				return j
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("JVM %d was not picked up within 10s", pid)
	return JVM{}
}

// uprobeMultiKernel reports whether the running kernel is Linux 6.6 or
// later, which has uprobe_multi links ("bpf: Add multi uprobe link").
func uprobeMultiKernel(t *testing.T) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 6
}

// libAttach is how the probe attached the JVM's libjvm.so (the file, which
// the probe may have found through another JVM's path first).
func libAttach(t *testing.T, p *Probe, j JVM) AttachMode {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(j.Lib, &st); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.libs[[2]uint64{uint64(st.Dev), st.Ino}]; l != nil {
		return l.attach
	}
	return ""
}

// Every safepoint the JVM logs itself, nerve sees, and for as long: with
// uprobe_multi where the kernel has it (auto), with classic uprobes
// (forced), and with classic uprobes where uprobe_multi fails on a library.
func TestSafepointsMatchJVMLog(t *testing.T) {
	multi := AttachUprobe
	if uprobeMultiKernel(t) {
		multi = AttachUprobeMulti
	}
	for _, tt := range []struct {
		name      string
		attach    AttachMode
		multiFail bool       // every uprobe_multi attach fails
		mode, lib AttachMode // the probe's mode and the library's
	}{
		{name: "auto", attach: AttachAuto, mode: multi, lib: multi},
		{name: "uprobe", attach: AttachUprobe, mode: AttachUprobe, lib: AttachUprobe},
		{name: "auto, uprobe_multi fails", attach: AttachAuto, multiFail: true, mode: multi, lib: AttachUprobe},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.multiFail {
				if multi != AttachUprobeMulti {
					privtest.Skip(t, "no uprobe_multi on this kernel, so no fallback from it")
				}
				uprobeMulti = func(*link.Executable, []string, *ebpf.Program, *link.UprobeMultiOptions) (link.Link, error) {
					return nil, errors.New("refused by the test")
				}
				t.Cleanup(func() { uprobeMulti = (*link.Executable).UprobeMulti })
			}
			p, rec := startProbeWith(t, Config{Attach: tt.attach})
			if got := p.AttachMode(); got != tt.mode {
				t.Errorf("attach mode %s, want %s on this kernel", got, tt.mode)
			}
			info := fmt.Sprintf("# HELP nerve_jvm_probe_info %s\n# TYPE nerve_jvm_probe_info gauge\nnerve_jvm_probe_info{attach=%q} 1\n", infoHelp, tt.mode)
			if err := testutil.CollectAndCompare(p, strings.NewReader(info), "nerve_jvm_probe_info"); err != nil {
				t.Error(err)
			}
			testSafepointsMatchJVMLog(t, p, rec, tt.lib)
		})
	}
}

func testSafepointsMatchJVMLog(t *testing.T, p *Probe, rec *recorder, lib AttachMode) {
	dir := t.TempDir()
	compileOwn(t, dir)
	// No periodic cleanup safepoints while the program sleeps, so that all
	// safepoints fall after the probe has attached.
	j := javatest.Start(t, dir, "SafepointsAfter", []string{"-XX:+UnlockDiagnosticVMOptions", "-XX:GuaranteedSafepointInterval=0"}, "1500", "3000")
	w := waitWatched(t, p, j.PID)
	if !w.Probes {
		t.Fatalf("JVM %d watched without USDT probes", j.PID)
	}
	if got := libAttach(t, p, w); got != lib {
		t.Errorf("libjvm.so attached with %s, want %s", got, lib)
	}
	waitExit(t, j)
	time.Sleep(300 * time.Millisecond) // the ring buffer drains

	f, err := os.Open(j.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logged, err := javatest.ParseSafepointLog(f)
	if err != nil {
		t.Fatal(err)
	}
	var logTotal time.Duration
	for _, r := range logged {
		logTotal += r.Total
	}
	seen := rec.of(j.PID, Safepoint)
	var seenTotal time.Duration
	for _, s := range seen {
		seenTotal += s.Duration()
	}
	t.Logf("%s: JVM log: %d safepoints, %.1fms stopped; nerve: %d safepoints, %.1fms; %d GCs, %d VM operations",
		lib, len(logged), float64(logTotal)/1e6, len(seen), float64(seenTotal)/1e6,
		len(rec.of(j.PID, GC)), len(rec.of(j.PID, VMOperation)))
	if len(logged) < 50 {
		t.Fatalf("only %d safepoints in the JVM's log", len(logged))
	}
	if d := math.Abs(float64(len(seen)-len(logged))) / float64(len(logged)); d > 0.02 {
		t.Errorf("nerve counted %d safepoints, the JVM logged %d (%.1f%% apart, max 2%%)", len(seen), len(logged), d*100)
	}
	if d := math.Abs(float64(seenTotal-logTotal)) / float64(logTotal); d > 0.10 {
		t.Errorf("nerve's stopped time %.1fms vs the JVM's %.1fms (%.1f%% apart, max 10%%)", float64(seenTotal)/1e6, float64(logTotal)/1e6, d*100)
	}
	ops := map[string]int{}
	for _, o := range rec.of(j.PID, VMOperation) {
		ops[o.Operation]++
	}
	for _, want := range []string{"G1CollectFull", "ThreadDump"} {
		if ops[want] == 0 {
			t.Errorf("no VM operation %q among %v", want, ops)
		}
	}
}

// A JVM started after the probe is found; one that exits leaves no series;
// a restarted one is followed.
func TestJVMLifecycle(t *testing.T) {
	p, rec := startProbe(t)
	dir := t.TempDir()
	compileOwn(t, dir)
	for round := 0; round < 2; round++ {
		j := javatest.Start(t, dir, "SafepointsAfter", nil, "1000", "700")
		w := waitWatched(t, p, j.PID)
		waitExit(t, j)
		time.Sleep(300 * time.Millisecond)
		if n := len(rec.of(j.PID, Safepoint)); n == 0 {
			t.Errorf("round %d: no safepoints seen for JVM %d", round, j.PID)
		}
		// Gone within a scan or two, with its series.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && len(p.JVMs()) > 0 && hasPID(p.JVMs(), j.PID) {
			time.Sleep(50 * time.Millisecond)
		}
		if hasPID(p.JVMs(), j.PID) {
			t.Fatalf("round %d: JVM %d still watched after it exited", round, j.PID)
		}
		if !hasLabel(p.JVMs(), w.Label) {
			if n := testutil.CollectAndCount(p, "nerve_jvm_safepoint_seconds"); n != 0 {
				body := collectText(t, p)
				if strings.Contains(body, fmt.Sprintf("target=%q", w.Label)) {
					t.Errorf("round %d: series for %q remain after its JVM exited", round, w.Label)
				}
			}
		}
	}
}

// A JVM in another mount namespace, whose libjvm.so sits at a path only that
// namespace has, is found through /proc/<pid>/root and probed.
func TestJVMInOtherMountNamespace(t *testing.T) {
	p, rec := startProbe(t)
	privtest.Tools(t, "unshare", "mount")
	dir := t.TempDir()
	compileOwn(t, dir)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(java)
	if err != nil {
		t.Fatal(err)
	}
	jdk := filepath.Dir(filepath.Dir(real)) // .../bin/java -> the JDK
	mnt := t.TempDir()                      // empty on the host; the JDK inside the namespace
	script := fmt.Sprintf(`mount --bind %q %q && exec %q -cp %q SafepointsAfter 500 1500`, jdk, mnt, filepath.Join(mnt, "bin", "java"), dir)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// unshare execs sh, which execs java: the pid stays the same.
	w := waitWatched(t, p, cmd.Process.Pid)
	if !strings.HasPrefix(w.Lib, fmt.Sprintf("/proc/%d/root%s", cmd.Process.Pid, mnt)) {
		t.Errorf("libjvm.so found at %s, want it under the namespace's %s", w.Lib, mnt)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("java in a mount namespace: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rec.of(cmd.Process.Pid, Safepoint)); n == 0 {
		t.Errorf("no safepoints seen for the JVM in another mount namespace")
	} else {
		t.Logf("%d safepoints seen for the JVM in another mount namespace (libjvm.so at %s)", n, w.Lib)
	}
}

// waitExit waits for the JVM to end on its own, at most a minute.
func waitExit(t *testing.T, j *javatest.JVM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.Wait(ctx); err != nil {
		t.Fatalf("java %d: %v\n%s", j.PID, err, j.Output())
	}
}

func hasPID(js []JVM, pid int) bool {
	for _, j := range js {
		if j.PID == pid {
			return true
		}
	}
	return false
}

func hasLabel(js []JVM, label string) bool {
	for _, j := range js {
		if j.Label == label {
			return true
		}
	}
	return false
}

func collectText(t *testing.T, p *Probe) string {
	t.Helper()
	var b strings.Builder
	mfs, err := gather(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}
