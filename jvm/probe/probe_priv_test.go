//go:build 386 || amd64

package probe

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

// Every safepoint the JVM logs itself, nerve sees, and for as long.
func TestSafepointsMatchJVMLog(t *testing.T) {
	p, rec := startProbe(t)
	dir := t.TempDir()
	compileOwn(t, dir)
	// No periodic cleanup safepoints while the program sleeps, so that all
	// safepoints fall after the probe has attached.
	j := javatest.Start(t, dir, "SafepointsAfter", []string{"-XX:+UnlockDiagnosticVMOptions", "-XX:GuaranteedSafepointInterval=0"}, "1500", "3000")
	w := waitWatched(t, p, j.PID)
	if !w.Probes {
		t.Fatalf("JVM %d watched without USDT probes", j.PID)
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
	t.Logf("JVM log: %d safepoints, %.1fms stopped; nerve: %d safepoints, %.1fms; %d GCs, %d VM operations",
		len(logged), float64(logTotal)/1e6, len(seen), float64(seenTotal)/1e6,
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
