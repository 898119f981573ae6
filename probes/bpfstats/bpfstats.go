package bpfstats

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Enable turns on the kernel's BPF run-time statistics (BPF_STATS_RUN_TIME,
// Linux 5.8) until the returned Closer is closed. The kernel counts holders,
// so closing it does not switch off statistics another process asked for.
func Enable() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time stats: %w", err)
	}
	return c, nil
}

// Programs returns a probe's programs by name. It is called at every scrape,
// so a probe that reloads programs is always read as it is now.
type Programs func() map[string]*ebpf.Program

// Collector exports the run-time statistics of the programs of every probe
// added to it. Its methods are safe for concurrent use.
type Collector struct {
	runSeconds      *prometheus.Desc
	runs            *prometheus.Desc
	recursionMisses *prometheus.Desc

	// mu guards sources, and is held through a whole Collect so that once
	// Remove returns, no scrape still reads the removed probe's programs
	// and the probe can close them.
	mu      sync.Mutex
	sources map[string]Programs // by probe name
}

// New returns a Collector with no probes.
func New() *Collector {
	labels := []string{"probe", "program"}
	return &Collector{
		runSeconds: prometheus.NewDesc("nerve_bpf_program_run_seconds_total",
			"CPU time the kernel spent running the BPF program while statistics were enabled.", labels, nil),
		runs: prometheus.NewDesc("nerve_bpf_program_runs_total",
			"Times the BPF program ran while statistics were enabled.", labels, nil),
		recursionMisses: prometheus.NewDesc("nerve_bpf_program_recursion_misses_total",
			"Times the kernel skipped the BPF program because a BPF program was already running on that CPU; each is a lost event.", labels, nil),
		sources: map[string]Programs{},
	}
}

// Add starts exporting the programs of probe, replacing any earlier ones of
// that name.
func (c *Collector) Add(probe string, programs Programs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[probe] = programs
}

// Remove stops exporting the programs of probe. Call it before closing them.
func (c *Collector) Remove(probe string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sources, probe)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runSeconds
	ch <- c.runs
	ch <- c.recursionMisses
}

// Collect implements prometheus.Collector. A program whose statistics cannot
// be read is reported as an invalid metric, which fails only that series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, probe := range slices.Sorted(maps.Keys(c.sources)) {
		progs := c.sources[probe]()
		for _, name := range slices.Sorted(maps.Keys(progs)) {
			st, err := progs[name].Stats()
			if err != nil {
				ch <- prometheus.NewInvalidMetric(c.runs, fmt.Errorf("probe %s program %s: read stats: %w", probe, name, err))
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.runSeconds, prometheus.CounterValue, st.Runtime.Seconds(), probe, name)
			ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(st.RunCount), probe, name)
			ch <- prometheus.MustNewConstMetric(c.recursionMisses, prometheus.CounterValue, float64(st.RecursionMisses), probe, name)
		}
	}
}
