package agent

import (
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/pagefault"
)

// pagefaultProbe wires the page-fault stall probe to its configuration and
// its outliers to fl.
func pagefaultProbe(fl *flightRun) ProbeSpec {
	return ProbeSpec{
		Name:    "pagefault",
		Enabled: func(c *config.Config) bool { return c.Probes.PageFault.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			p, err := pagefault.New(logger, pagefault.Config{Targets: c.Targets,
				Outliers: fl.sink(), OutlierStall: fl.limits().PageFault, OutlierRate: fl.rate()})
			if err != nil {
				return nil, err
			}
			fl.addSource(flight.PageFault, p.OutlierDrops)
			return &pagefaultAdapter{Collector: p.Collector(c.Probes.PageFault.BucketsPerOctave), p: p}, nil
		},
	}
}

type pagefaultAdapter struct {
	*pagefault.Collector
	p *pagefault.Probe
}

func (a *pagefaultAdapter) Programs() map[string]*ebpf.Program { return a.p.Programs() }
func (a *pagefaultAdapter) Close() error                       { return a.p.Close() }

// Attached is false while only procfs major-fault counts are available.
func (a *pagefaultAdapter) Attached() bool { return a.p.Attached() }
