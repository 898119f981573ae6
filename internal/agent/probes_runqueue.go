package agent

import (
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/runqueue"
)

// runqueueProbe wires the run-queue delay probe to its configuration and
// its outliers to fl.
func runqueueProbe(fl *flightRun) ProbeSpec {
	return ProbeSpec{
		Name:    "runqueue",
		Enabled: func(c *config.Config) bool { return c.Probes.RunQueue.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			p, err := runqueue.New(logger, runqueue.Config{Targets: c.Targets,
				Outliers: fl.sink(), OutlierDelay: fl.limits().RunQueue, OutlierRate: fl.rate()})
			if err != nil {
				return nil, err
			}
			fl.addSource(flight.RunQueue, p.OutlierDrops)
			return &runqueueAdapter{Collector: p.Collector(c.Probes.RunQueue.BucketsPerOctave), p: p}, nil
		},
	}
}

type runqueueAdapter struct {
	*runqueue.Collector
	p *runqueue.Probe
}

func (a *runqueueAdapter) Programs() map[string]*ebpf.Program { return a.p.Programs() }
func (a *runqueueAdapter) Close() error                       { return a.p.Close() }

// Attached is false while the probe runs on its schedstat fallback.
func (a *runqueueAdapter) Attached() bool { return a.p.Attached() }
