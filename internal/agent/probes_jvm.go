package agent

import (
	"log/slog"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
	"github.com/nervehq/nerve/jvm/thrash"
	"github.com/nervehq/nerve/probes/flight"
)

// jvmProbe wires the JVM pause probe to its configuration and its
// outliers to fl.
func jvmProbe(fl *flightRun) ProbeSpec {
	return ProbeSpec{
		Name:    "jvm",
		Enabled: func(c *config.Config) bool { return c.Probes.JVM.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			th := c.Probes.JVM.Thrash
			p, err := probe.New(logger, probe.Config{Targets: c.Targets,
				Thrash:   thrash.Config{Threshold: th.Threshold, Weight: th.Weight},
				Outliers: fl.sink(), OutlierPause: fl.limits().Safepoint,
				Attach: probe.AttachMode(c.Probes.JVM.Attach)})
			if err != nil {
				return nil, err
			}
			fl.addSource(flight.Safepoint, p.OutlierDrops)
			return p, nil
		},
	}
}
