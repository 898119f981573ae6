package agent

// What the metrics reference (internal/docgen, `make docs`) needs from the
// agent: the registry a running agent serves, built by the same code.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/internal/config"
)

// Registry checks the machine as Run does, starts every probe cfg enables
// and the actuator when cfg enables it (without running its loop), and
// returns the registry the agent serves at web.telemetry_path: the probes',
// the actuator's, the BPF statistics', the build's, the Go runtime's, the
// process's and the HTTP handler's metrics. stop stops what it started.
// It needs root, like Run.
func Registry(ctx context.Context, logger *slog.Logger, cfg *config.Config, opts Options) (reg *prometheus.Registry, stop func(), err error) {
	if err := prepareMachine(logger); err != nil {
		return nil, nil, err
	}
	a, err := newAgent(logger, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Actuator.Enabled {
		act, err := a.newActuator(ctx, cfg)
		if err != nil {
			a.close()
			return nil, nil, fmt.Errorf("actuator: %w", err)
		}
		a.act = act
		a.registry.MustRegister(act.ctl)
	}
	// Building the handler registers promhttp's metrics about it, as
	// serving does.
	a.handler(cfg.Web.TelemetryPath)
	return a.registry, func() {
		if a.act != nil {
			a.act.close()
		}
		a.close()
	}, nil
}
