//go:build 386 || amd64

package probe

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nervehq/nerve/jvm/javatest"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/flight/flighttest"
)

// With a threshold below every pause, each safepoint of a JVM forcing them
// is an outlier carrying the JVM's label, the VM operation the JVM itself
// logged for it, its time to safepoint and its pause.
func TestSafepointOutliers(t *testing.T) {
	sink := &flighttest.Sink{}
	p, rec := startProbeWith(t, Config{Outliers: sink, OutlierPause: time.Microsecond})
	dir := t.TempDir()
	javatest.Compile(t, dir, "SafepointLoop.java")
	start := time.Now()
	j := javatest.Start(t, dir, "SafepointLoop", nil, "3")
	w := waitWatched(t, p, j.PID)
	waitExit(t, j)
	time.Sleep(300 * time.Millisecond) // the ring buffer drains

	got := sink.Events(func(e flight.Event) bool { return e.PID == j.PID })
	seen := rec.of(j.PID, Safepoint)
	logged, err := j.Safepoints()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d outliers, %d safepoints seen, %d logged by the JVM; drops %+v", len(got), len(seen), len(logged), p.OutlierDrops())
	if len(got) == 0 {
		t.Fatal("no safepoint outliers")
	}
	t.Logf("first: %+v %+v", got[0], *got[0].Safepoint)
	// Every safepoint the probe saw is an outlier (each pause > 1us).
	if len(got) != len(seen) {
		t.Errorf("%d outliers for %d safepoints, all over the threshold", len(got), len(seen))
	}
	// The probe attached after the JVM's first safepoints: compare with the
	// tail of the JVM's log, operation by operation.
	if len(logged) < len(got) {
		t.Fatalf("the JVM logged %d safepoints, fewer than the %d outliers", len(logged), len(got))
	}
	tail := logged[len(logged)-len(got):]
	mismatch := 0
	var ttsLog, ttsOurs []float64
	for i, e := range got {
		sp := e.Safepoint
		if e.Signal != flight.Safepoint || sp == nil {
			t.Fatalf("outlier %d: signal %q, safepoint %v", i, e.Signal, sp)
		}
		if sp.JVM != w.Label || e.Comm != "java" || e.CgroupID == 0 {
			t.Errorf("outlier %d: jvm %q comm %q cgroup %d, want label %q, comm java", i, sp.JVM, e.Comm, e.CgroupID, w.Label)
		}
		if sp.Pause != e.Latency || sp.TimeToSafepoint <= 0 || sp.TimeToSafepoint >= sp.Pause {
			t.Errorf("outlier %d: pause %v latency %v time to safepoint %v", i, sp.Pause, e.Latency, sp.TimeToSafepoint)
		}
		if e.Time.Before(start) || e.Time.After(time.Now()) {
			t.Errorf("outlier %d: time %v outside the test", i, e.Time)
		}
		if sp.VMOperation != tail[i].Operation {
			mismatch++
		}
		ttsLog = append(ttsLog, float64(tail[i].Reaching+tail[i].Cleanup))
		ttsOurs = append(ttsOurs, float64(sp.TimeToSafepoint))
	}
	if mismatch > len(got)/50 {
		t.Errorf("%d of %d outliers name another VM operation than the JVM's log", mismatch, len(got))
	}
	ops := map[string]int{}
	for _, e := range got {
		ops[e.Safepoint.VMOperation]++
	}
	for _, want := range []string{"G1CollectFull", "ThreadDump"} {
		if ops[want] == 0 {
			t.Errorf("no outlier for VM operation %q among %v", want, ops)
		}
	}
	// Time to safepoint: ours runs to the operation's start, so it also
	// holds the cleanup the JVM logs apart; the medians agree within a
	// factor of 3 (both are microseconds).
	slices.Sort(ttsLog)
	slices.Sort(ttsOurs)
	ml, mo := ttsLog[len(ttsLog)/2], ttsOurs[len(ttsOurs)/2]
	t.Logf("time to safepoint median: JVM log (reaching + cleanup) %.1fus, nerve %.1fus; operations %v", ml/1e3, mo/1e3, ops)
	if r := mo / ml; math.IsNaN(r) || r < 1.0/3 || r > 3 {
		t.Errorf("time to safepoint median %.1fus vs the JVM's %.1fus", mo/1e3, ml/1e3)
	}
}
