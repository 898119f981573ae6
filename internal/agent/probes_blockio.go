package agent

import (
	"log/slog"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/flight"
)

// blockioProbe wires the block I/O latency probe to its configuration and
// its outliers to fl.
func blockioProbe(fl *flightRun) ProbeSpec {
	return ProbeSpec{
		Name:    "blockio",
		Enabled: func(c *config.Config) bool { return c.Probes.BlockIO.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			b := c.Probes.BlockIO
			p, err := blockio.New(logger, blockio.Config{
				BucketsPerOctave: b.BucketsPerOctave,
				MaxDevices:       b.MaxDevices,
				MaxRequests:      b.MaxRequests,
				Outliers:         fl.sink(),
				OutlierService:   fl.limits().BlockIOService,
				OutlierQueue:     fl.limits().BlockIOQueue,
				OutlierRate:      fl.rate(),
			})
			if err != nil {
				// Not p: a nil *blockio.Probe in a Probe is not a nil Probe.
				return nil, err
			}
			fl.addSource(flight.BlockIO, p.OutlierDrops)
			return p, nil
		},
	}
}
