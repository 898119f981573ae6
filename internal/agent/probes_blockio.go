package agent

import (
	"log/slog"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/blockio"
)

// blockioProbe wires the block I/O latency probe to its configuration.
func blockioProbe() ProbeSpec {
	return ProbeSpec{
		Name:    "blockio",
		Enabled: func(c *config.Config) bool { return c.Probes.BlockIO.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			b := c.Probes.BlockIO
			p, err := blockio.New(logger, blockio.Config{
				BucketsPerOctave: b.BucketsPerOctave,
				MaxDevices:       b.MaxDevices,
				MaxRequests:      b.MaxRequests,
			})
			if err != nil {
				// Not p: a nil *blockio.Probe in a Probe is not a nil Probe.
				return nil, err
			}
			return p, nil
		},
	}
}
