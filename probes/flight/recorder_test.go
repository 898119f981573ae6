package flight

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)

// clock is a settable time for a Recorder.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func blockEvent(at time.Time, pid int, dev string, lat time.Duration) Event {
	return Event{Signal: BlockIO, Time: at, Latency: lat, PID: pid, Comm: "dd",
		Block: &BlockEvent{Device: dev, Op: "read", Service: lat, Bytes: 4096}}
}

func TestRecorderKeepsNewestMaxEvents(t *testing.T) {
	c := &clock{now: t0.Add(time.Hour)}
	r := New(Config{MaxEvents: 3, MaxAge: time.Hour, Now: c.Now})
	for i := range 5 {
		r.Record(blockEvent(t0.Add(time.Duration(i)*time.Second), 100+i, "sda", time.Duration(i+1)*time.Millisecond))
	}
	got := r.Snapshot(Filter{})
	var pids []int
	for _, e := range got {
		pids = append(pids, e.PID)
	}
	if fmt.Sprint(pids) != "[102 103 104]" {
		t.Errorf("held pids %v, want [102 103 104]", pids)
	}
	cs := r.Counts()[BlockIO]
	if cs.Held != 3 || cs.Total != 5 || cs.RingFull != 2 {
		t.Errorf("counts %+v, want held 3, total 5, ring_full 2", cs)
	}
	if n := r.Counts()[RunQueue]; n != (Counts{}) {
		t.Errorf("runqueue counts %+v, want none: rings are per signal", n)
	}
}

func TestRecorderExpiresOldEvents(t *testing.T) {
	c := &clock{now: t0}
	r := New(Config{MaxEvents: 10, MaxAge: time.Minute, Now: c.Now})
	for i := range 4 {
		r.Record(blockEvent(t0.Add(time.Duration(i)*30*time.Second), i+1, "sda", time.Millisecond))
	}
	c.set(t0.Add(100 * time.Second)) // cutoff 40s: the events at 0s and 30s are too old
	got := r.Snapshot(Filter{})
	if len(got) != 2 || got[0].PID != 3 || got[1].PID != 4 {
		t.Fatalf("held %v, want the events of pid 3 and 4", got)
	}
	cs := r.Counts()[BlockIO]
	if cs.Held != 2 || cs.RingFull != 0 || cs.Total != 4 {
		t.Errorf("counts %+v, want held 2, no drops (age is not a drop), total 4", cs)
	}
	// The ring keeps working after it emptied and wrapped.
	c.set(t0.Add(time.Hour))
	if n := len(r.Snapshot(Filter{})); n != 0 {
		t.Errorf("%d events held an hour later, want 0", n)
	}
	for i := range 25 {
		r.Record(blockEvent(t0.Add(time.Hour), 1000+i, "sda", time.Millisecond))
	}
	got = r.Snapshot(Filter{})
	if len(got) != 10 || got[0].PID != 1015 || got[9].PID != 1024 {
		t.Errorf("after refill: %d events from pid %d, want the 10 newest (1015-1024)", len(got), got[0].PID)
	}
}

func TestRecorderFilters(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	r := New(Config{Now: c.Now})
	r.Record(blockEvent(t0, 10, "sda", 40*time.Millisecond))
	r.Record(blockEvent(t0.Add(10*time.Second), 11, "sdb", 50*time.Millisecond))
	r.Record(Event{Signal: RunQueue, Time: t0.Add(20 * time.Second), PID: 10, Comm: "java", Latency: 8 * time.Millisecond,
		RunQueue: &RunQueueEvent{CPU: 1, PrevPID: 77, PrevComm: "stress-ng"}})
	r.Record(Event{Signal: PageFault, Time: t0.Add(30 * time.Second), PID: 12, Comm: "java", Latency: 15 * time.Millisecond,
		PageFault: &PageFaultEvent{File: "/data/sst-1-Data.db"}})
	for _, tc := range []struct {
		name string
		f    Filter
		want string // pids in time order
	}{
		{"all", Filter{}, "[10 11 10 12]"},
		{"pid", Filter{PID: 10}, "[10 10]"},
		{"device picks block events only", Filter{Device: "sdb"}, "[11]"},
		{"signal", Filter{Signal: PageFault}, "[12]"},
		{"since", Filter{Since: t0.Add(10 * time.Second)}, "[11 10 12]"},
		{"until", Filter{Until: t0.Add(10 * time.Second)}, "[10 11]"},
		{"pid and device", Filter{PID: 10, Device: "sda"}, "[10]"},
		{"nothing", Filter{PID: 99}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pids []int
			for _, e := range r.Snapshot(tc.f) {
				pids = append(pids, e.PID)
			}
			if got := fmt.Sprint(pids); got != tc.want && !(tc.want == "[]" && pids == nil) {
				t.Errorf("pids %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRecorderBoundsStrings(t *testing.T) {
	r := New(Config{Now: func() time.Time { return t0 }})
	long := strings.Repeat("x", 5000)
	r.Record(Event{Signal: PageFault, Comm: strings.Repeat("c", 40), Cgroup: long, PageFault: &PageFaultEvent{File: "/" + long}})
	r.Record(Event{Signal: Safepoint, Safepoint: &SafepointEvent{JVM: long, VMOperation: long}})
	r.Record(Event{Signal: BlockIO, Block: &BlockEvent{Device: long, Op: long}})
	r.Record(Event{Signal: RunQueue, RunQueue: &RunQueueEvent{PrevComm: long}})
	for _, e := range r.Snapshot(Filter{}) {
		if e.Time != t0 {
			t.Errorf("%s: time %v, want the recorder's clock for an event without one", e.Signal, e.Time)
		}
		check := func(name, s string, n int) {
			if len(s) > n {
				t.Errorf("%s %s: %d bytes, want at most %d", e.Signal, name, len(s), n)
			}
		}
		check("comm", e.Comm, MaxCommLen)
		check("cgroup", e.Cgroup, MaxPathLen)
		switch e.Signal {
		case PageFault:
			check("file", e.PageFault.File, MaxPathLen)
		case Safepoint:
			check("jvm", e.Safepoint.JVM, MaxJVMLen)
			check("vm operation", e.Safepoint.VMOperation, MaxJVMLen)
		case BlockIO:
			check("device", e.Block.Device, MaxDeviceLen)
			check("op", e.Block.Op, MaxOpLen)
		case RunQueue:
			check("prev comm", e.RunQueue.PrevComm, MaxCommLen)
		}
	}
}

func TestRecorderIgnoresUnknownSignal(t *testing.T) {
	r := New(Config{})
	r.Record(Event{Signal: "bogus"})
	if n := len(r.Snapshot(Filter{})); n != 0 {
		t.Errorf("%d events held, want 0", n)
	}
}

func TestRecorderResolvesCgroups(t *testing.T) {
	calls := 0
	r := New(Config{Cgroups: func(pid int, id uint64) string {
		calls++
		return fmt.Sprintf("/cg/%d/%d", pid, id)
	}})
	r.Record(Event{Signal: RunQueue, PID: 5, CgroupID: 42})
	r.Record(Event{Signal: RunQueue, PID: 5, CgroupID: 42, Cgroup: "/given"})
	r.Record(Event{Signal: RunQueue, PID: 5})
	got := r.Snapshot(Filter{})
	if got[0].Cgroup != "/cg/5/42" || got[1].Cgroup != "/given" || got[2].Cgroup != "" || calls != 1 {
		t.Errorf("cgroups %q %q %q after %d calls; want the resolver only for an id without a path",
			got[0].Cgroup, got[1].Cgroup, got[2].Cgroup, calls)
	}
}

func TestRecorderDropSources(t *testing.T) {
	r := New(Config{})
	r.AddSource(BlockIO, func() Drops { return Drops{RateLimited: 3, Lost: 1} })
	r.AddSource(BlockIO, func() Drops { return Drops{RateLimited: 2} })
	c := r.Counts()[BlockIO]
	if c.RateLimited != 5 || c.Lost != 1 || c.Dropped() != 6 {
		t.Errorf("counts %+v, want rate_limited 5, lost 1 summed over the sources", c)
	}
}

// Many probes record while reports are taken: run with -race.
func TestRecorderConcurrent(t *testing.T) {
	r := New(Config{MaxEvents: 100})
	var wg sync.WaitGroup
	for _, s := range Signals {
		for w := range 2 {
			wg.Go(func() {
				for i := range 2000 {
					r.Record(Event{Signal: s, PID: w*10000 + i, Latency: time.Duration(i)})
				}
			})
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				r.Report(Query{Limit: 10})
				r.Counts()
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	for _, s := range Signals {
		c := r.Counts()[s]
		if c.Total != 4000 || c.Held != 100 || c.RingFull != 3900 {
			t.Errorf("%s: %+v, want total 4000, held 100, ring_full 3900", s, c)
		}
	}
}

// The events held stay within MemoryBound however many arrive: the heap
// after a flood of events with the longest strings grows by less than it.
func TestRecorderMemoryBound(t *testing.T) {
	const max = 2000
	r := New(Config{MaxEvents: max})
	long := strings.Repeat("f", 4*MaxPathLen)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := range 50 * max {
		for _, s := range Signals {
			e := Event{Signal: s, PID: i, Comm: "comm-" + long[:20], Cgroup: "/" + long}
			switch s {
			case BlockIO:
				e.Block = &BlockEvent{Device: "nvme0n1", Op: "read"}
			case RunQueue:
				e.RunQueue = &RunQueueEvent{PrevComm: "x"}
			case PageFault:
				e.PageFault = &PageFaultEvent{File: "/" + long}
			case Safepoint:
				e.Safepoint = &SafepointEvent{JVM: long[:100], VMOperation: long[:100]}
			}
			r.Record(e)
		}
	}
	grown := int64(heap()) - int64(before)
	t.Logf("held %d events per signal: heap grew %d bytes, bound %d (%d per event)", max, grown, r.MemoryBound(), MaxEventBytes)
	if grown > r.MemoryBound() {
		t.Errorf("heap grew %d bytes, more than the bound %d", grown, r.MemoryBound())
	}
	runtime.KeepAlive(r)
}

func BenchmarkRecord(b *testing.B) {
	r := New(Config{MaxEvents: 10000})
	e := blockEvent(t0, 1, "sda", time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		r.Record(e)
	}
}
