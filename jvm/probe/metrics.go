//go:build 386 || amd64

package probe

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/jvm/thrash"
)

// maxOperations bounds the operation label: HotSpot has a fixed set of VM
// operations (about 60); anything past this many distinct names is "other".
const maxOperations = 64

// pauseBuckets: 50 us to about 100 s, a factor of 2 apart.
var pauseBuckets = prometheus.ExponentialBuckets(50e-6, 2, 22)

// windows over which the stopped fraction is reported.
var windows = []time.Duration{10 * time.Second, 60 * time.Second}

// jvmState is what the aggregator keeps per JVM.
type jvmState struct {
	label  string
	thrash *thrash.Detector // fed with every safepoint
	pauses []Pause          // safepoints of the last 60 s
	ops    []vmOp           // VM operations since the last safepoint ended, at most maxPendingOps
}

// vmOp is a VM operation waiting for the safepoint it may have run in.
type vmOp struct {
	start time.Duration
	name  string
}

// maxPendingOps bounds the VM operations kept between two safepoints: a
// safepoint runs one (JDK 17) or a few batched ones; those outside any
// safepoint (handshakes) are only kept until the next one.
const maxPendingOps = 16

// safepointOps is what the VM operations run inside a safepoint say about
// it: the time to safepoint (until the first began; 0 when none is known)
// and their names, distinct, comma-separated.
type safepointOps struct {
	tts   time.Duration
	names string
}

func (s *jvmState) opsWithin(start, end time.Duration) safepointOps {
	var out safepointOps
	first := time.Duration(-1)
	var names []string
	for _, o := range s.ops {
		if o.start <= start || o.start >= end {
			continue
		}
		if first < 0 || o.start < first {
			first = o.start
		}
		if o.name != "" && !slices.Contains(names, o.name) {
			names = append(names, o.name)
		}
	}
	if first >= 0 {
		out.tts = first - start
	}
	out.names = strings.Join(names, ",")
	return out
}

// aggregator turns pauses into metrics. Events arrive from the reader
// goroutine, scrapes from the HTTP server's.
type aggregator struct {
	safepoint *prometheus.HistogramVec
	gc        *prometheus.HistogramVec
	vmop      *prometheus.HistogramVec
	tts       *prometheus.HistogramVec
	stopped   *prometheus.Desc
	jvmsDesc  *prometheus.Desc

	thrashCfg  thrash.Config
	bucketDesc *prometheus.Desc
	overDesc   *prometheus.Desc

	mu  sync.Mutex        // guards jvm and ops
	jvm map[int]*jvmState // by pid
	ops map[string]bool   // operation names seen
}

func newAggregator(tc thrash.Config) *aggregator {
	return &aggregator{
		thrashCfg: tc,
		bucketDesc: prometheus.NewDesc("nerve_jvm_thrash_bucket_seconds",
			"The jvmquake token bucket of stop-the-world time (filled by every safepoint, drained by running time times the weight); the fullest among a target's JVMs.",
			[]string{"target"}, nil),
		overDesc: prometheus.NewDesc("nerve_jvm_thrash_over",
			"1 when a JVM of the target has its thrash bucket over the threshold: a JVM dying slowly (query of death, GC spiral).",
			[]string{"target"}, nil),
		safepoint: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nerve_jvm_safepoint_seconds",
			Help:    "Safepoint pauses of the watched JVMs, from the start of synchronisation to the end (hs_private:safepoint__begin/end).",
			Buckets: pauseBuckets,
		}, []string{"target"}),
		gc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nerve_jvm_gc_pause_seconds",
			Help:    "Garbage collections of the watched JVMs (hotspot:gc__begin/end).",
			Buckets: pauseBuckets,
		}, []string{"target"}),
		vmop: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nerve_jvm_vm_operation_seconds",
			Help:    "VM operations of the watched JVMs by name (hotspot:vmops__begin/end).",
			Buckets: pauseBuckets,
		}, []string{"target", "operation"}),
		tts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nerve_jvm_time_to_safepoint_seconds",
			Help:    "Time from the start of a safepoint until its VM operation began: how long threads took to stop.",
			Buckets: pauseBuckets,
		}, []string{"target"}),
		stopped: prometheus.NewDesc("nerve_jvm_stopped_fraction",
			"Fraction of wall time the JVM was stopped at safepoints over the window; the largest among a target's JVMs.",
			[]string{"target", "window"}, nil),
		jvmsDesc: prometheus.NewDesc("nerve_jvm_watched",
			"JVMs watched, by target and whether their USDT probes are attached.",
			[]string{"target", "probes"}, nil),
		jvm: map[int]*jvmState{},
		ops: map[string]bool{},
	}
}

func (a *aggregator) state(p Pause) *jvmState {
	s := a.jvm[p.PID]
	if s == nil {
		d, err := thrash.New(a.thrashCfg)
		if err != nil { // validated by New; keep going without one
			d = nil
		}
		s = &jvmState{label: p.Label, thrash: d}
		a.jvm[p.PID] = s
	}
	return s
}

// mono turns a CLOCK_MONOTONIC reading into the time.Time the thrash
// detector works in; only differences matter to it.
func mono(d time.Duration) time.Time { return time.Unix(0, 0).Add(d) }

// add takes one pause; for a safepoint it returns what its VM operations
// say about it.
func (a *aggregator) add(p Pause) safepointOps {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(p)
	sec := p.Duration().Seconds()
	var sp safepointOps
	switch p.Kind {
	case Safepoint:
		a.safepoint.WithLabelValues(p.Label).Observe(sec)
		sp = s.opsWithin(p.Start, p.End)
		if sp.tts > 0 {
			a.tts.WithLabelValues(p.Label).Observe(sp.tts.Seconds())
		}
		s.ops = s.ops[:0]
		if s.thrash != nil {
			s.thrash.Pause(mono(p.Start), mono(p.End))
		}
		s.pauses = append(s.pauses, p)
		cut := p.End - windows[len(windows)-1]
		i := 0
		for i < len(s.pauses) && s.pauses[i].End < cut {
			i++
		}
		s.pauses = s.pauses[i:]
	case GC:
		a.gc.WithLabelValues(p.Label).Observe(sec)
	case VMOperation:
		op := p.Operation
		if op == "" {
			op = "unknown"
		}
		if !a.ops[op] {
			if len(a.ops) >= maxOperations {
				op = "other"
			}
			a.ops[op] = true
		}
		a.vmop.WithLabelValues(p.Label, op).Observe(sec)
		if len(s.ops) < maxPendingOps {
			s.ops = append(s.ops, vmOp{start: p.Start, name: p.Operation})
		}
	}
	return sp
}

// forget drops a JVM; when it was the last of its label, the label's series go.
func (a *aggregator) forget(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.jvm[pid]
	delete(a.jvm, pid)
	if s == nil {
		return
	}
	for _, o := range a.jvm {
		if o.label == s.label {
			return
		}
	}
	for _, v := range []*prometheus.HistogramVec{a.safepoint, a.gc, a.vmop, a.tts} {
		v.DeletePartialMatch(prometheus.Labels{"target": s.label})
	}
}

// StoppedFraction is the fraction of the window before now (CLOCK_MONOTONIC)
// that the JVM spent in safepoints.
func (s *jvmState) stoppedFraction(now, window time.Duration) float64 {
	from := now - window
	var stopped time.Duration
	for _, p := range s.pauses {
		st, en := max(p.Start, from), min(p.End, now)
		if en > st {
			stopped += en - st
		}
	}
	return float64(stopped) / float64(window)
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

func (a *aggregator) describe(ch chan<- *prometheus.Desc) {
	a.safepoint.Describe(ch)
	a.gc.Describe(ch)
	a.vmop.Describe(ch)
	a.tts.Describe(ch)
	ch <- a.stopped
	ch <- a.jvmsDesc
	ch <- a.bucketDesc
	ch <- a.overDesc
}

func (a *aggregator) collect(ch chan<- prometheus.Metric, jvms []JVM) {
	a.safepoint.Collect(ch)
	a.gc.Collect(ch)
	a.vmop.Collect(ch)
	a.tts.Collect(ch)
	now := monotonicNow()
	a.mu.Lock()
	worst := map[string][]float64{}
	bucket := map[string]float64{}
	over := map[string]float64{}
	for _, j := range jvms {
		s := a.jvm[j.PID]
		f := make([]float64, len(windows))
		if s != nil {
			for i, w := range windows {
				f[i] = s.stoppedFraction(now, w)
			}
		}
		if old, ok := worst[j.Label]; ok {
			for i := range f {
				f[i] = max(f[i], old[i])
			}
		}
		worst[j.Label] = f
		if s != nil && s.thrash != nil {
			bucket[j.Label] = max(bucket[j.Label], s.thrash.Level(mono(now)).Seconds())
			if s.thrash.Over(mono(now)) {
				over[j.Label] = 1
			}
		} else if _, ok := bucket[j.Label]; !ok {
			bucket[j.Label] = 0
		}
	}
	a.mu.Unlock()
	for label, b := range bucket {
		ch <- prometheus.MustNewConstMetric(a.bucketDesc, prometheus.GaugeValue, b, label)
		ch <- prometheus.MustNewConstMetric(a.overDesc, prometheus.GaugeValue, over[label], label)
	}
	for label, f := range worst {
		for i, w := range windows {
			ch <- prometheus.MustNewConstMetric(a.stopped, prometheus.GaugeValue, f[i], label, w.String())
		}
	}
	count := map[[2]string]int{}
	for _, j := range jvms {
		probes := "false"
		if j.Probes {
			probes = "true"
		}
		count[[2]string{j.Label, probes}]++
	}
	for k, n := range count {
		ch <- prometheus.MustNewConstMetric(a.jvmsDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

const infoHelp = "How the JVM probe attaches to HotSpot's USDT probes: uprobe_multi (one BPF link per program and libjvm.so, Linux >= 6.6) or uprobe (a perf event per location, which needs CAP_SYS_ADMIN)."

var infoDesc = prometheus.NewDesc("nerve_jvm_probe_info", infoHelp, []string{"attach"}, nil)

// Describe implements prometheus.Collector.
func (p *Probe) Describe(ch chan<- *prometheus.Desc) {
	p.agg.describe(ch)
	ch <- infoDesc
	ch <- hsSafepointsDesc
	ch <- hsSafepointTimeDesc
	ch <- hsGCTimeDesc
}

// Collect implements prometheus.Collector.
func (p *Probe) Collect(ch chan<- prometheus.Metric) {
	jvms := p.JVMs()
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, string(p.mode))
	p.agg.collect(ch, jvms)
	p.collectHsperf(ch, jvms)
}

// StoppedFraction reports, for a watched JVM, the fraction of the last window
// it spent stopped at safepoints.
func (p *Probe) StoppedFraction(pid int, window time.Duration) (float64, bool) {
	p.agg.mu.Lock()
	defer p.agg.mu.Unlock()
	s := p.agg.jvm[pid]
	if s == nil {
		return 0, false
	}
	return s.stoppedFraction(monotonicNow(), window), true
}

// Thrash returns the thrash detector of a watched JVM (nil before its first
// safepoint), for the actuator to read or subscribe to. Its times are
// CLOCK_MONOTONIC readings as time.Time (see Now).
func (p *Probe) Thrash(pid int) *thrash.Detector {
	p.agg.mu.Lock()
	defer p.agg.mu.Unlock()
	if s := p.agg.jvm[pid]; s != nil {
		return s.thrash
	}
	return nil
}

// Now is the present in the thrash detectors' time.
func Now() time.Time { return mono(monotonicNow()) }
