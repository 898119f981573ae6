package agent

import (
	"log/slog"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
)

// jvmProbe wires the JVM pause probe to its configuration.
func jvmProbe() ProbeSpec {
	return ProbeSpec{
		Name:    "jvm",
		Enabled: func(c *config.Config) bool { return c.Probes.JVM.Enabled },
		New: func(logger *slog.Logger, c *config.Config) (Probe, error) {
			p, err := probe.New(logger, probe.Config{Targets: c.Targets})
			if err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}
