package runqueue

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/targets"
)

var (
	delayDesc = prometheus.NewDesc("nerve_runqueue_delay_seconds",
		"Time runnable tasks waited for a CPU, from wakeup or preemption until they ran; target=\"node\" is every task on the node.",
		[]string{"target"}, nil)
	waitDesc = prometheus.NewDesc("nerve_runqueue_wait_seconds_total",
		"Total time tasks waited for a CPU, from the kernel's schedstat (reported only when the BPF programs cannot run).",
		[]string{"target"}, nil)
	targetUpDesc = prometheus.NewDesc("nerve_target_up",
		"Whether a configured target currently matches any process or cgroup.", []string{"target"}, nil)
	pressureDesc = prometheus.NewDesc("nerve_cpu_pressure_waiting_seconds_total",
		"Time some (or all, kind=\"full\") non-idle tasks were delayed waiting for a CPU, from /proc/pressure/cpu (context, not a call to action).",
		[]string{"kind"}, nil)
	dropsDesc = prometheus.NewDesc("nerve_probe_drops_total",
		"Events a probe lost, by reason.", []string{"probe", "reason"}, nil)
)

// Collector exports the probe's metrics at scrape time.
type Collector struct {
	p         *Probe
	perOctave int
}

// Collector returns a prometheus.Collector with perOctave exported buckets
// per power of two (1, 2 or 4).
func (p *Probe) Collector(perOctave int) *Collector {
	if !histogram.ValidPerOctave(perOctave) {
		perOctave = 2
	}
	return &Collector{p: p, perOctave: perOctave}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{delayDesc, waitDesc, targetUpDesc, pressureDesc, dropsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	set := p.tracker.Current()
	found := set.Found
	for i, t := range p.cfg.Targets {
		up := 0.0
		if found[i] {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(targetUpDesc, prometheus.GaugeValue, up, t.Name)
	}

	if p.bpf {
		d, err := p.Read()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(delayDesc, err)
		} else {
			ch <- d.Node.Metric(delayDesc, c.perOctave, NodeTarget)
			for name, h := range d.Targets {
				ch <- h.Metric(delayDesc, c.perOctave, name)
			}
		}
	} else {
		c.schedstat(ch, found, set)
	}
	if drops, err := p.Drops(); err != nil {
		ch <- prometheus.NewInvalidMetric(dropsDesc, err)
	} else {
		for reason, n := range drops {
			ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(n), "runqueue", reason)
		}
	}
	if psi, err := p.proc.PSIStatsForResource("cpu"); err == nil {
		if psi.Some != nil {
			ch <- prometheus.MustNewConstMetric(pressureDesc, prometheus.CounterValue, float64(psi.Some.Total)/1e6, "some")
		}
		if psi.Full != nil {
			ch <- prometheus.MustNewConstMetric(pressureDesc, prometheus.CounterValue, float64(psi.Full.Total)/1e6, "full")
		}
	}
}

// schedstat is the fallback: run-delay totals the kernel keeps anyway, for
// the node and for targets named by process (cgroup targets have no such
// total in cgroupfs).
func (c *Collector) schedstat(ch chan<- prometheus.Metric, found []bool, set *targets.Set) {
	s, err := c.p.proc.Schedstat()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(waitDesc, err)
		return
	}
	var node uint64
	for _, cpu := range s.CPUs {
		node += cpu.WaitingNanoseconds
	}
	ch <- prometheus.MustNewConstMetric(waitDesc, prometheus.CounterValue, float64(node)/1e9, NodeTarget)
	if set == nil {
		return
	}
	perTarget := map[uint32]uint64{}
	for tgid, idx := range set.Tgids {
		perTarget[idx] += threadWait(c.p.cfg.Resolver.Proc, tgid)
	}
	for i, t := range c.p.cfg.Targets {
		if t.Process != "" && found[i] {
			ch <- prometheus.MustNewConstMetric(waitDesc, prometheus.CounterValue, float64(perTarget[uint32(i)])/1e9, t.Name)
		}
	}
}

// threadWait sums the run delay of every thread of a process from
// /proc/<pid>/task/<tid>/schedstat (second field, nanoseconds).
func threadWait(proc string, pid uint32) uint64 {
	dirs, _ := filepath.Glob(filepath.Join(proc, strconv.Itoa(int(pid)), "task", "*", "schedstat"))
	var total uint64
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			total += n
		}
	}
	return total
}
