package runqueue

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/flight/flighttest"
	"github.com/nervehq/nerve/probes/targets"
)

// procsOf lists the processes in a cgroup v2 directory.
func procsOf(t *testing.T, dir string) map[int]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		out[n] = true
	}
	return out
}

// CPU hogs in a cgroup wait milliseconds for a CPU: outliers naming them,
// the CPU and what ran instead. A probe with a threshold of an hour, running
// at the same time, sees none.
func TestRunQueueOutliers(t *testing.T) {
	privtest.Tools(t, "stress-ng")
	_, dir := privtest.Cgroup(t)
	cg, err := targets.CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	sink, none := &flighttest.Sink{}, &flighttest.Sink{}
	p := newTestProbeConfig(t, Config{Outliers: sink, OutlierDelay: time.Millisecond})
	newTestProbeConfig(t, Config{Outliers: none, OutlierDelay: time.Hour})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers := 2 * runtime.NumCPU()
	startHogs(t, ctx, dir, workers, 4*time.Second)
	time.Sleep(2 * time.Second)
	hogs := procsOf(t, dir) // stress-ng and its workers, all alive now

	inCgroup := func(e flight.Event) bool { return e.CgroupID == cg }
	got := sink.Wait(20, 3*time.Second, inCgroup)
	t.Logf("%d outliers in all, %d from the hogs' cgroup; drops %+v", sink.Len(), len(got), p.OutlierDrops())
	if len(got) < 20 {
		t.Fatalf("%d outliers from %d CPU hogs in 2s with a 1ms threshold", len(got), workers)
	}
	t.Logf("first: %+v %+v", got[0], *got[0].RunQueue)
	named := 0
	for i, e := range got {
		rq := e.RunQueue
		if e.Signal != flight.RunQueue || rq == nil {
			t.Fatalf("outlier %d: signal %q, runqueue %v", i, e.Signal, rq)
		}
		if hogs[e.PID] {
			named++
		}
		if !strings.HasPrefix(e.Comm, "stress-ng") || e.TID == 0 {
			t.Errorf("outlier %d: comm %q tid %d, want a stress-ng thread", i, e.Comm, e.TID)
		}
		if e.Latency < time.Millisecond {
			t.Errorf("outlier %d: delay %v under the 1ms threshold", i, e.Latency)
		}
		if rq.CPU < 0 || rq.CPU >= ebpf.MustPossibleCPU() || rq.PrevComm == "" || rq.PrevTID == e.TID {
			t.Errorf("outlier %d: cpu %d, prev %d %q", i, rq.CPU, rq.PrevTID, rq.PrevComm)
		}
	}
	// Workers that ended before procsOf read the cgroup cannot be named.
	if named < len(got)*9/10 {
		t.Errorf("only %d of %d outliers name a process of the hogs' cgroup %v", named, len(got), hogs)
	}
	if n := none.Len(); n != 0 {
		t.Errorf("%d outliers with a threshold of an hour", n)
	}
}

// A flood (every wait an outlier) is cut by the kernel's rate limit to
// rate x CPUs x seconds plus a burst per CPU, and the rest is counted.
func TestRunQueueOutlierRateLimit(t *testing.T) {
	privtest.Tools(t, "stress-ng")
	_, dir := privtest.Cgroup(t)
	const rate, burst = 50, 10
	sink := &flighttest.Sink{}
	start := time.Now()
	p := newTestProbeConfig(t, Config{Outliers: sink, OutlierDelay: time.Nanosecond, OutlierRate: rate, OutlierBurst: burst})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	startHogs(t, ctx, dir, 2*runtime.NumCPU(), 3*time.Second)
	time.Sleep(3 * time.Second)
	drops := p.OutlierDrops()
	p.Close() // the reader has delivered all it will
	elapsed := time.Since(start)

	cpus := ebpf.MustPossibleCPU()
	delivered := sink.Len()
	limit := cpus * (int(float64(rate)*elapsed.Seconds()) + 1 + burst)
	t.Logf("%.1fs, %d CPUs, rate %d/s burst %d per CPU: %d delivered (limit %d), drops %+v",
		elapsed.Seconds(), cpus, rate, burst, delivered, limit, drops)
	if drops.RateLimited == 0 {
		t.Error("nothing rate limited in a flood")
	}
	if delivered > limit {
		t.Errorf("%d outliers delivered, more than the limit %d", delivered, limit)
	}
	if min := int(rate * elapsed.Seconds() / 2); delivered < min {
		t.Errorf("only %d outliers delivered in a flood, want at least %d", delivered, min)
	}
	if drops.Lost != 0 {
		t.Errorf("%d outliers lost to a full ring buffer under a rate limit", drops.Lost)
	}
}
