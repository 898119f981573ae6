package flight

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Defaults of a Recorder's Config.
const (
	DefaultMaxEvents = 10000
	DefaultMaxAge    = 15 * time.Minute
)

// Longest strings an Event keeps, in bytes; longer ones are cut. With them
// an event held has a size bound (MaxEventBytes), so a ring's memory has one
// too. Comm and PrevComm come from the kernel at TASK_COMM_LEN (16) already.
const (
	MaxCommLen   = 16
	MaxPathLen   = 256 // Cgroup, PageFault.File
	MaxDeviceLen = 32
	MaxOpLen     = 16
	MaxJVMLen    = 64 // Safepoint.JVM, Safepoint.VMOperation
)

// MaxEventBytes bounds the memory one held Event costs: the Event, its
// largest per-signal part, and every string at its longest, each rounded
// up for the allocator. Strings the probes share between events (a
// device's name, a cgroup path from a Resolver's cache) cost less.
var MaxEventBytes = int64(unsafe.Sizeof(Event{})) +
	alloc(max(unsafe.Sizeof(BlockEvent{}), unsafe.Sizeof(RunQueueEvent{}), unsafe.Sizeof(PageFaultEvent{}), unsafe.Sizeof(SafepointEvent{}))) +
	alloc(MaxCommLen) + alloc(MaxPathLen) + // Comm, Cgroup
	max(alloc(MaxPathLen), alloc(MaxDeviceLen)+alloc(MaxOpLen), alloc(MaxCommLen), 2*alloc(MaxJVMLen))

// alloc rounds n up to a multiple of 16, as Go's small size classes are at
// least.
func alloc[T int | uintptr](n T) int64 { return (int64(n) + 15) &^ 15 }

// Config sizes a Recorder.
type Config struct {
	// MaxEvents is how many events each signal's ring holds; the oldest is
	// evicted (and counted as dropped, reason ring_full) to make room.
	// 0 means DefaultMaxEvents.
	MaxEvents int
	// MaxAge is how long an event is kept; older ones are evicted, not
	// counted as dropped: they have served their time. 0 means
	// DefaultMaxAge.
	MaxAge time.Duration
	// Cgroups names an event's cgroup from its id when the probe left
	// Cgroup empty; nil leaves it empty. It is called from Record, so it
	// must be cheap when it has the answer (see Resolver).
	Cgroups func(pid int, id uint64) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Recorder is a Sink that keeps the latest outliers of each signal in a
// bounded ring: at most MaxEvents each, none older than MaxAge. It is safe
// for concurrent use; Record takes one signal's lock and copies the event.
type Recorder struct {
	cfg   Config
	rings map[Signal]*ring // fixed at New: one per Signals

	srcMu   sync.Mutex // guards sources
	sources map[Signal][]func() Drops
}

// ring is one signal's events, oldest first from head.
type ring struct {
	mu       sync.Mutex // guards the fields below
	buf      []Event    // grows to MaxEvents, then wraps
	head     int        // index of the oldest event once buf is full
	n        int        // events held
	total    uint64     // events recorded
	ringFull uint64     // events evicted to make room
}

var _ Sink = (*Recorder)(nil)

// New returns an empty Recorder.
func New(cfg Config) *Recorder {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Recorder{cfg: cfg, rings: map[Signal]*ring{}, sources: map[Signal][]func() Drops{}}
	for _, s := range Signals {
		r.rings[s] = &ring{}
	}
	return r
}

// MaxEvents is how many events each signal's ring holds.
func (r *Recorder) MaxEvents() int { return r.cfg.MaxEvents }

// MaxAge is how long an event is kept.
func (r *Recorder) MaxAge() time.Duration { return r.cfg.MaxAge }

// MemoryBound is the most memory the events held can take: every ring full
// of events at their largest.
func (r *Recorder) MemoryBound() int64 {
	return int64(r.cfg.MaxEvents) * int64(len(Signals)) * MaxEventBytes
}

// Record keeps e in its signal's ring, evicting the oldest event when the
// ring is full. An event of an unknown signal is ignored: no probe sends
// one. An event without a time gets the current time.
func (r *Recorder) Record(e Event) {
	rg := r.rings[e.Signal]
	if rg == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = r.cfg.Now()
	}
	bound(&e)
	if e.Cgroup == "" && e.CgroupID != 0 && r.cfg.Cgroups != nil {
		e.Cgroup = r.cfg.Cgroups(e.PID, e.CgroupID)
	}
	rg.mu.Lock()
	defer rg.mu.Unlock()
	rg.total++
	max := r.cfg.MaxEvents
	if rg.n < max {
		if len(rg.buf) < max {
			rg.buf = append(rg.buf, e)
		} else {
			rg.buf[(rg.head+rg.n)%max] = e
		}
		rg.n++
		return
	}
	// Full: the newest replaces the oldest.
	rg.buf[rg.head] = e
	rg.head = (rg.head + 1) % max
	rg.ringFull++
}

// expire drops the events older than cutoff from the front of the ring. The
// ring is in arrival order, which is time order but for the small skew
// between CPUs, so an event a little out of order waits for the next call.
// rg.mu must be held.
func (rg *ring) expire(cutoff time.Time, max int) {
	for rg.n > 0 && rg.buf[rg.head].Time.Before(cutoff) {
		rg.buf[rg.head] = Event{} // let go of its parts
		rg.head = (rg.head + 1) % max
		rg.n--
	}
	if rg.n == 0 {
		rg.head = 0
		rg.buf = rg.buf[:0]
	}
}

// Snapshot returns the events held that f matches, oldest first. The
// events are copies; their per-signal parts are shared and must not be
// changed.
func (r *Recorder) Snapshot(f Filter) []Event {
	cutoff := r.cfg.Now().Add(-r.cfg.MaxAge)
	var out []Event
	for _, s := range Signals {
		if f.Signal != "" && f.Signal != s {
			continue
		}
		rg := r.rings[s]
		rg.mu.Lock()
		rg.expire(cutoff, r.cfg.MaxEvents)
		for i := range rg.n {
			e := &rg.buf[(rg.head+i)%r.cfg.MaxEvents]
			if f.Match(e) {
				out = append(out, *e)
			}
		}
		rg.mu.Unlock()
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out
}

// Counts is one signal's figures in a Recorder.
type Counts struct {
	Held     int    `json:"held"`      // events held now
	Total    uint64 `json:"total"`     // events recorded since start
	RingFull uint64 `json:"ring_full"` // evicted to make room
	// RateLimited and Lost are the probes' drops (Drops), summed over the
	// signal's sources.
	RateLimited uint64 `json:"rate_limited"`
	Lost        uint64 `json:"lost"`
}

// Dropped is every outlier of the signal that is not held for a reason
// other than age.
func (c Counts) Dropped() uint64 { return c.RingFull + c.RateLimited + c.Lost }

// Counts returns every signal's figures, with the probes' drops read now.
func (r *Recorder) Counts() map[Signal]Counts {
	cutoff := r.cfg.Now().Add(-r.cfg.MaxAge)
	out := make(map[Signal]Counts, len(Signals))
	for _, s := range Signals {
		rg := r.rings[s]
		rg.mu.Lock()
		rg.expire(cutoff, r.cfg.MaxEvents)
		c := Counts{Held: rg.n, Total: rg.total, RingFull: rg.ringFull}
		rg.mu.Unlock()
		d := r.drops(s)
		c.RateLimited, c.Lost = d.RateLimited, d.Lost
		out[s] = c
	}
	return out
}

// AddSource registers a probe's drop counts (its OutlierDrops method) under
// a signal; they are read at every scrape and summed per signal.
func (r *Recorder) AddSource(s Signal, drops func() Drops) {
	r.srcMu.Lock()
	defer r.srcMu.Unlock()
	r.sources[s] = append(r.sources[s], drops)
}

func (r *Recorder) drops(s Signal) Drops {
	r.srcMu.Lock()
	srcs := slices.Clone(r.sources[s])
	r.srcMu.Unlock()
	var d Drops
	for _, f := range srcs {
		x := f()
		d.RateLimited += x.RateLimited
		d.Lost += x.Lost
	}
	return d
}

// bound cuts e's strings to their maximum lengths. Cutting copies, so that
// the long original is not kept alive behind the short one.
func bound(e *Event) {
	cut(&e.Comm, MaxCommLen)
	cut(&e.Cgroup, MaxPathLen)
	switch {
	case e.Block != nil:
		if len(e.Block.Device) > MaxDeviceLen || len(e.Block.Op) > MaxOpLen {
			b := *e.Block
			cut(&b.Device, MaxDeviceLen)
			cut(&b.Op, MaxOpLen)
			e.Block = &b
		}
	case e.RunQueue != nil:
		if len(e.RunQueue.PrevComm) > MaxCommLen {
			rq := *e.RunQueue
			cut(&rq.PrevComm, MaxCommLen)
			e.RunQueue = &rq
		}
	case e.PageFault != nil:
		if len(e.PageFault.File) > MaxPathLen {
			pf := *e.PageFault
			cut(&pf.File, MaxPathLen)
			e.PageFault = &pf
		}
	case e.Safepoint != nil:
		if len(e.Safepoint.JVM) > MaxJVMLen || len(e.Safepoint.VMOperation) > MaxJVMLen {
			sp := *e.Safepoint
			cut(&sp.JVM, MaxJVMLen)
			cut(&sp.VMOperation, MaxJVMLen)
			e.Safepoint = &sp
		}
	}
}

func cut(s *string, n int) {
	if len(*s) > n {
		*s = strings.Clone(strings.ToValidUTF8((*s)[:n], ""))
	}
}
