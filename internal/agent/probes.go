package agent

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/internal/config"
)

// Probe is what the agent needs from a probe: its metrics, read at scrape
// time, its BPF programs, for the run-time statistics, and a way to detach.
type Probe interface {
	prometheus.Collector
	Programs() map[string]*ebpf.Program
	Close() error
}

// degradable is a probe that can run without its BPF programs, on a
// fallback source (procfs, schedstat); it reports which.
type degradable interface {
	Attached() bool
}

// ProbeSpec tells the agent how to start one probe.
type ProbeSpec struct {
	// Name is the probe's label value in every metric about it.
	Name string
	// Enabled reports whether the configuration asks for the probe.
	Enabled func(*config.Config) bool
	// New loads and attaches the probe.
	New func(logger *slog.Logger, cfg *config.Config) (Probe, error)
}

// builtinProbes are the probes the agent runs. Each lives in its own
// probes_<name>.go, the only file that imports the probe's package.
// fl receives their outliers.
func builtinProbes(fl *flightRun) []ProbeSpec {
	return []ProbeSpec{blockioProbe(fl), runqueueProbe(fl), pagefaultProbe(fl), jvmProbe(fl)}
}

// startedProbe is an enabled probe, attached or not.
type startedProbe struct {
	name  string
	probe Probe // nil when it failed to start
}

// probeSet holds the enabled probes and exports their metrics together with
// the agent's metrics about them. One collector rather than one per probe,
// because the self-metrics of all probes share descriptors, which a
// prometheus.Registry accepts from one collector only.
type probeSet struct {
	probes   []startedProbe // fixed after startProbes
	attached *prometheus.Desc
	duration *prometheus.Desc
}

// startProbes starts every enabled probe of specs. A probe that fails is
// logged and kept as not attached, unless cfg.Probes.Strict, when the probes
// started so far are closed and the error, naming the probe, returned.
func startProbes(logger *slog.Logger, cfg *config.Config, specs []ProbeSpec) (*probeSet, error) {
	s := &probeSet{
		attached: prometheus.NewDesc("nerve_probe_attached",
			"Whether the probe's BPF programs are loaded and attached (1), or not (0): it failed to start, or runs on a fallback without BPF (see the log). Only enabled probes are listed.",
			[]string{"probe"}, nil),
		duration: prometheus.NewDesc("nerve_scrape_collector_duration_seconds",
			"Time the probe took to produce its metrics in this scrape.",
			[]string{"probe"}, nil),
	}
	for _, spec := range specs {
		log := logger.With("probe", spec.Name)
		if !spec.Enabled(cfg) {
			log.Info("probe disabled")
			continue
		}
		p, err := spec.New(log, cfg)
		if err != nil {
			if cfg.Probes.Strict {
				s.close(logger)
				return nil, fmt.Errorf("probe %s: %w (probes.strict is set)", spec.Name, err)
			}
			log.Error("probe not attached; running without it", "err", err)
			s.probes = append(s.probes, startedProbe{name: spec.Name})
			continue
		}
		log.Info("probe attached")
		s.probes = append(s.probes, startedProbe{name: spec.Name, probe: p})
	}
	return s, nil
}

// close closes every attached probe, logging failures: at shutdown there is
// no one left to return them to.
func (s *probeSet) close(logger *slog.Logger) {
	for _, sp := range s.probes {
		if sp.probe == nil {
			continue
		}
		if err := sp.probe.Close(); err != nil {
			logger.Error("close probe", "probe", sp.name, "err", err)
		}
	}
}

// Describe implements prometheus.Collector.
func (s *probeSet) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.attached
	ch <- s.duration
	for _, sp := range s.probes {
		if sp.probe != nil {
			sp.probe.Describe(ch)
		}
	}
}

// Collect implements prometheus.Collector. Probes are collected in parallel,
// so one slow probe delays the scrape by its own time only, and each is timed.
func (s *probeSet) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, sp := range s.probes {
		attached := 0.0
		if sp.probe != nil {
			attached = 1
			if d, ok := sp.probe.(degradable); ok && !d.Attached() {
				attached = 0 // running, but on its fallback
			}
		}
		ch <- prometheus.MustNewConstMetric(s.attached, prometheus.GaugeValue, attached, sp.name)
		if sp.probe == nil {
			continue
		}
		// Each goroutine ends when its probe's Collect returns; Collect
		// waits for all of them.
		wg.Go(func() {
			start := time.Now()
			sp.probe.Collect(ch)
			ch <- prometheus.MustNewConstMetric(s.duration, prometheus.GaugeValue, time.Since(start).Seconds(), sp.name)
		})
	}
	wg.Wait()
}
