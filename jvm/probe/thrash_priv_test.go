//go:build 386 || amd64

package probe

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
	"github.com/nervehq/nerve/jvm/thrash"
)

// thrashProbe has a 3 s bucket so that a test sees it fill in seconds; the
// weight is jvmquake's.
func thrashProbe(t *testing.T) (*Probe, thrash.Config) {
	t.Helper()
	privtest.Root(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	cfg := thrash.Config{Threshold: 3 * time.Second, Weight: thrash.DefaultWeight}
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Config{Scan: 50 * time.Millisecond, Thrash: cfg})
	if err != nil {
		privtest.Skip(t, fmt.Sprintf("JVM probe cannot load here: %v", err))
	}
	t.Cleanup(func() { p.Close() })
	return p, cfg
}

// A JVM in a GC spiral fills its bucket past the threshold about when the
// token-bucket rule predicts from its own stopped fraction.
func TestHeapThrashTriggers(t *testing.T) {
	p, cfg := thrashProbe(t)
	dir := t.TempDir()
	javatest.Compile(t, dir, "HeapThrash.java")
	j := javatest.Start(t, dir, "HeapThrash", []string{"-Xmx64m"}, "40")
	waitWatched(t, p, j.PID)

	var d *thrash.Detector
	for i := 0; i < 200 && d == nil; i++ {
		d = p.Thrash(j.PID)
		time.Sleep(20 * time.Millisecond)
	}
	if d == nil {
		t.Fatal("no safepoint seen from the thrashing JVM within 4 s")
	}
	first := Now()
	events := d.Subscribe()
	var overAt time.Duration
	deadline := time.After(35 * time.Second)
wait:
	for {
		select {
		case e := <-events:
			if e.Over {
				overAt = e.At.Sub(first)
				break wait
			}
		case <-deadline:
			break wait
		}
	}
	j.Stop()
	f, err := os.Open(j.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := javatest.ParseSafepointLog(f)
	if err != nil {
		t.Fatal(err)
	}
	frac := javatest.StoppedFraction(recs)
	var total time.Duration
	for _, r := range recs {
		total += r.Total
	}
	mean := total / time.Duration(max(len(recs), 1))
	want, ok := cfg.TimeToTrigger(frac, mean)
	t.Logf("JVM stopped %.1f%% of the time in %d safepoints (mean %v); bucket over after %v; the rule predicts %v (triggers: %v)",
		frac*100, len(recs), mean, overAt, want, ok)
	if !ok {
		t.Fatalf("the JVM was stopped only %.1f%% of the time: not a thrashing JVM, the rule never triggers", frac*100)
	}
	if overAt == 0 {
		t.Fatalf("bucket never went over in 35 s; level %v", d.Level(Now()))
	}
	// Generous: the JVM's stopped fraction varies over its run, and the
	// first safepoints are seen a little after the JVM starts.
	if overAt > 2*want+2*time.Second {
		t.Errorf("over after %v, the rule predicts %v", overAt, want)
	}
}

// A healthy busy JVM never fills its bucket.
func TestBusyJVMNeverTriggers(t *testing.T) {
	p, _ := thrashProbe(t)
	dir := t.TempDir()
	javatest.Compile(t, dir, "Busy.java")
	j := javatest.Start(t, dir, "Busy", nil, "8")
	waitWatched(t, p, j.PID)
	var maxLevel time.Duration
	for i := 0; i < 70; i++ {
		if d := p.Thrash(j.PID); d != nil {
			maxLevel = max(maxLevel, d.Level(Now()))
			if d.Over(Now()) {
				t.Fatalf("healthy JVM's bucket went over: level %v", d.Level(Now()))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("healthy busy JVM: bucket peaked at %v (threshold 3s)", maxLevel)
}
