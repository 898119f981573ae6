package agent

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/canary"
	"github.com/nervehq/nerve/jvm/probe"
	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/pagefault"
	"github.com/nervehq/nerve/probes/runqueue"
)

// sampler turns the probes' cumulative readings into the actuator's
// windowed Sample: every tick it reads each probe once and keeps the
// difference from the previous tick. Any probe may be missing (not enabled,
// not attached); its fields are then NaN or empty, which the rules treat as
// no data.
type sampler struct {
	block  *blockio.Probe
	runq   *runqueue.Probe
	pf     *pagefault.Probe
	jvm    *probe.Probe
	target string // the target whose run-queue and page-fault figures count; "" = the node
	mounts []string
	canary *canary.Checker
	proc   procfs.FS

	last      time.Time
	lastBlock map[string]blockio.DeviceStats
	lastRunq  histogram.Hist
	lastPF    histogram.Hist
}

func newSampler(probes []startedProbe, target string, mounts []string, canaryTimeout time.Duration) *sampler {
	s := &sampler{target: target, mounts: mounts, canary: canary.New(canaryTimeout)}
	s.proc, _ = procfs.NewDefaultFS()
	for _, sp := range probes {
		switch p := sp.probe.(type) {
		case *blockio.Probe:
			s.block = p
		case *runqueueAdapter:
			if p.p.Attached() {
				s.runq = p.p
			}
		case *pagefaultAdapter:
			if p.p.Attached() {
				s.pf = p.p
			}
		case *probe.Probe:
			s.jvm = p
		}
	}
	return s
}

// sample reads the probes; the first call only sets the baseline and gives
// NaN quantiles.
func (s *sampler) sample(ctx context.Context, now time.Time) actuator.Sample {
	out := actuator.Sample{
		At:                    now,
		Devices:               map[string]actuator.DeviceSample{},
		RunQueueP99:           math.NaN(),
		PageFaultStallP99:     math.NaN(),
		PageFaultStallSeconds: math.NaN(),
		JVMs:                  map[int]actuator.JVMSample{},
		Canaries:              map[string]actuator.CanaryResult{},
		Context:               s.context(),
	}
	dt := now.Sub(s.last).Seconds()
	first := s.last.IsZero()
	s.last = now

	if s.block != nil {
		if snap, err := s.block.Snapshot(); err == nil {
			cur := map[string]blockio.DeviceStats{}
			for _, d := range snap.Devices {
				cur[d.Name] = d
				prev, ok := s.lastBlock[d.Name]
				if first || !ok {
					continue
				}
				out.Devices[d.Name] = deviceWindow(prev, d, dt)
			}
			s.lastBlock = cur
		}
	}
	if s.runq != nil {
		if d, err := s.runq.Read(); err == nil {
			h := d.Node
			if t, ok := d.Targets[s.target]; ok && s.target != "" {
				h = t
			}
			if !first {
				w := sub(h, s.lastRunq)
				out.RunQueueP99 = w.Quantile(0.99) / 1e9
			}
			s.lastRunq = h
		}
	}
	if s.pf != nil {
		if st, err := s.pf.Read(); err == nil {
			h := st.Node
			if t, ok := st.Targets[s.target]; ok && s.target != "" {
				h = t
			}
			if !first && dt > 0 {
				w := sub(h, s.lastPF)
				out.PageFaultStallP99 = w.Quantile(0.99) / 1e9
				out.PageFaultStallSeconds = float64(w.SumNs) / 1e9 / dt
			}
			s.lastPF = h
		}
	}
	if s.jvm != nil {
		pnow := probe.Now()
		for _, j := range s.jvm.JVMs() {
			js := actuator.JVMSample{Label: j.Label, StoppedFraction: math.NaN()}
			if f, ok := s.jvm.StoppedFraction(j.PID, time.Minute); ok {
				js.StoppedFraction = f
			}
			if d := s.jvm.Thrash(j.PID); d != nil {
				js.ThrashLevel = d.Level(pnow)
				js.ThrashOver = d.Over(pnow)
			}
			out.JVMs[j.PID] = js
		}
	}
	for _, m := range s.mounts {
		out.Canaries[m] = s.canary.Check(ctx, m)
	}
	return out
}

// deviceWindow is one disk over the window between two readings.
func deviceWindow(prev, cur blockio.DeviceStats, dt float64) actuator.DeviceSample {
	var idle, shallow, all, queue histogram.Hist
	var reqs uint64
	for op := range cur.Ops {
		c, p := &cur.Ops[op], &prev.Ops[op]
		for cl := range c.Service {
			w := sub(c.Service[cl], p.Service[cl])
			all.Add(&w)
			switch cl {
			case int(blockio.Inflight0):
				idle.Add(&w)
			case int(blockio.Inflight1to3):
				shallow.Add(&w)
			}
		}
		q := sub(c.Queue, p.Queue)
		queue.Add(&q)
		reqs += c.Requests - p.Requests
	}
	ds := actuator.DeviceSample{
		ServiceIdleP99:    idle.Quantile(0.99) / 1e9,
		ServiceIdleN:      idle.Count(),
		ServiceShallowP99: shallow.Quantile(0.99) / 1e9,
		ServiceShallowN:   shallow.Count(),
		ServiceP99:        all.Quantile(0.99) / 1e9,
		QueueP99:          queue.Quantile(0.99) / 1e9,
	}
	if dt > 0 {
		ds.IOPS = float64(reqs) / dt
	}
	return ds
}

// sub is a-b, for cumulative histograms read at two times. A counter that
// went backwards (a device slot reused) gives an empty window.
func sub(a, b histogram.Hist) histogram.Hist {
	var out histogram.Hist
	for i := range a.Counts {
		if a.Counts[i] < b.Counts[i] {
			return histogram.Hist{}
		}
		out.Counts[i] = a.Counts[i] - b.Counts[i]
	}
	if a.SumNs >= b.SumNs {
		out.SumNs = a.SumNs - b.SumNs
	}
	return out
}

// context is what each diagnosis carries along: pressure, load, memory.
func (s *sampler) context() map[string]float64 {
	ctx := map[string]float64{}
	for _, res := range []string{"cpu", "io", "memory"} {
		if psi, err := s.proc.PSIStatsForResource(res); err == nil && psi.Some != nil {
			ctx["psi."+res+".some_avg10"] = psi.Some.Avg10
		}
	}
	if la, err := s.proc.LoadAvg(); err == nil {
		ctx["load1"] = la.Load1
	}
	if mi, err := s.proc.Meminfo(); err == nil && mi.MemAvailableBytes != nil {
		ctx["memory.available_bytes"] = float64(*mi.MemAvailableBytes)
	}
	return ctx
}
