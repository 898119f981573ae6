package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nervehq/nerve/internal/buildinfo"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/bpfstats"
	"github.com/nervehq/nerve/probes/kernel"
)

// shutdownTimeout bounds how long shutdown waits for scrapes in flight; a
// systemd stop waits 90 s by default before it kills, so 10 s leaves room to
// close the probes after.
const shutdownTimeout = 10 * time.Second

// Options are the agent's settings that do not come from the config file.
type Options struct {
	// ConfigFile is the file a reload reads; "" means the defaults only,
	// and a reload then has nothing to do.
	ConfigFile string
	// Overrides are the command-line settings; they win over the file,
	// at start and on every reload.
	Overrides Overrides
	// LogLevel is the level of logger; a reload that changes log.level
	// sets it. May be nil, and then the level stays.
	LogLevel *slog.LevelVar
	// Reload: each value received reloads ConfigFile. The command wires
	// SIGHUP to it. May be nil.
	Reload <-chan os.Signal
	// Version and Revision label nerve_build_info.
	Version, Revision string
	// Probes are the probes to run; nil means the built-in ones.
	Probes []ProbeSpec
}

// Overrides are settings given on the command line. A nil field leaves the
// configuration as it is.
type Overrides struct {
	// EmbeddedManager runs a single-replica manager in the agent for a
	// one-box trial (--manager=embedded).
	EmbeddedManager bool
	ListenAddress   *string
	TelemetryPath   *string
	LogLevel        *string
	ProbesStrict    *bool
	BPFStats        *bool
}

// Apply writes the set overrides into cfg.
func (o Overrides) Apply(cfg *config.Config) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&cfg.Web.ListenAddress, o.ListenAddress)
	set(&cfg.Web.TelemetryPath, o.TelemetryPath)
	set(&cfg.Log.Level, o.LogLevel)
	if o.ProbesStrict != nil {
		cfg.Probes.Strict = *o.ProbesStrict
	}
	if o.BPFStats != nil {
		cfg.BPFStats = *o.BPFStats
	}
}

// LoadConfig gives the configuration the agent runs on: the defaults, then
// the file at path (if any), then the overrides, validated together.
func LoadConfig(path string, o Overrides) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	o.Apply(cfg)
	if err := cfg.Validate(); err != nil {
		// The file was valid on its own, so the flags are at fault.
		return nil, fmt.Errorf("command-line flags: %w", err)
	}
	return cfg, nil
}

// Run checks the machine, starts the probes cfg enables and serves metrics
// until ctx is cancelled, then shuts down and returns nil. cfg must have
// passed Validate, as LoadConfig's result has. It returns an
// error when the machine cannot run the agent, when the listen address
// cannot be bound, when serving fails, or when a probe fails to start and
// probes.strict is set.
func Run(ctx context.Context, logger *slog.Logger, cfg *config.Config, opts Options) error {
	if err := prepareMachine(logger); err != nil {
		return err
	}
	kernel.Detect().Log(logger)

	// Bind before loading any probe: a port already taken is the likeliest
	// start failure and the cheapest to find.
	ln, err := net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		return err // *net.OpError names the address
	}
	a, err := newAgent(logger, cfg, opts)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.close()
	if opts.Overrides.EmbeddedManager {
		stop, err := startEmbeddedManager(ctx, a, cfg)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	if cfg.Actuator.Enabled {
		act, err := a.newActuator(ctx, cfg)
		if err != nil {
			ln.Close()
			return fmt.Errorf("actuator: %w", err)
		}
		a.act = act
		a.registry.MustRegister(act.ctl)
		// The actuator goroutine ends with ctx; close waits for it before
		// the probes it reads are closed.
		a.actDone = make(chan struct{})
		go func() {
			defer close(a.actDone)
			act.run(ctx)
		}()
	}
	// Probes attached and interrupted actions resumed: keep only what the
	// configuration still needs (caps.go).
	a.dropCapabilities(cfg)
	return a.serve(ctx, ln, cfg, opts)
}

// prepareMachine checks that this process can load the probes here (root or
// CAP_BPF and CAP_PERFMON, BTF), mounts tracefs and bpffs when they are not,
// and lifts the memlock limit.
func prepareMachine(logger *slog.Logger) error {
	if err := kernel.CheckPrivileges(); err != nil {
		return fmt.Errorf("nerve agent must run as root (or with CAP_BPF and CAP_PERFMON): %w", err)
	}
	if err := kernel.CheckBTF(); err != nil {
		return err
	}
	if err := kernel.EnsureMounts(logger); err != nil {
		return err
	}
	// A no-op on kernels that account BPF memory to the cgroup (5.11+);
	// before that, maps larger than the 8 MiB default limit fail to load.
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock limit: %w", err)
	}
	return nil
}

// agent is a running agent's state between start and shutdown.
type agent struct {
	logger   *slog.Logger
	registry *prometheus.Registry
	probes   *probeSet
	stats    *bpfstats.Collector // nil when statistics are off
	statsOff io.Closer           // switches statistics off; nil when off
	// serving is true from the start of serving until shutdown begins;
	// /healthz reports it.
	serving atomic.Bool
	act     *actuatorRun  // nil when the actuator is off
	actDone chan struct{} // closed when the actuator goroutine has ended
	flight  *flightRun    // the outliers of the probes (flight.go)
}

// newAgent switches on BPF statistics if asked, starts the probes and builds
// the metrics registry. It needs no privileges itself; probes do.
func newAgent(logger *slog.Logger, cfg *config.Config, opts Options) (*agent, error) {
	a := &agent{logger: logger, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector(opts.Version, opts.Revision),
		capsCollector{},
	)

	if cfg.BPFStats {
		off, err := bpfstats.Enable()
		if err != nil {
			// Statistics are a diagnostic; the probes are worth more
			// than the figures on what they cost.
			logger.Error("BPF statistics not enabled; running without them", "err", err)
		} else {
			a.statsOff = off
			a.stats = bpfstats.New()
			a.registry.MustRegister(a.stats)
		}
	}

	a.flight = newFlight(logger, cfg)
	a.registry.MustRegister(a.flight)
	specs := opts.Probes
	if specs == nil {
		specs = builtinProbes(a.flight)
	}
	probes, err := startProbes(logger, cfg, specs)
	if err != nil {
		a.close()
		return nil, err
	}
	a.probes = probes
	if err := a.registry.Register(probes); err != nil {
		a.close()
		return nil, fmt.Errorf("register probe metrics: %w", err)
	}
	if a.stats != nil {
		for _, sp := range probes.probes {
			if sp.probe != nil {
				a.stats.Add(sp.name, sp.probe.Programs)
			}
		}
	}
	return a, nil
}

// close stops statistics reads of the probes, closes the probes, then
// switches statistics off. Safe to call on a partly built agent.
func (a *agent) close() {
	if a.actDone != nil {
		<-a.actDone
		a.act.close()
	}
	if a.probes != nil {
		if a.stats != nil {
			for _, sp := range a.probes.probes {
				a.stats.Remove(sp.name)
			}
		}
		a.probes.close(a.logger)
	}
	a.flight.close()
	if a.statsOff != nil {
		if err := a.statsOff.Close(); err != nil {
			a.logger.Error("switch off BPF statistics", "err", err)
		}
	}
}

// serve serves HTTP on ln until ctx is cancelled, reloading the config on
// each value from opts.Reload. It returns nil after a clean shutdown.
func (a *agent) serve(ctx context.Context, ln net.Listener, cfg *config.Config, opts Options) error {
	srv := &http.Server{
		Handler:           a.handler(cfg.Web.TelemetryPath),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	// The server goroutine ends when Serve returns: after Shutdown below,
	// or on a listener failure, which ends serve with the error.
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.serving.Store(true)
	a.logger.Info("serving metrics", "address", ln.Addr().String(), "path", cfg.Web.TelemetryPath)

	running := cfg
	for {
		select {
		case <-ctx.Done():
			a.serving.Store(false)
			a.logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				// Scrapes still running after the timeout are cut off.
				a.logger.Warn("http shutdown timed out; closing connections", "err", err)
				srv.Close()
			}
			if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve http: %w", err)
			}
			return nil
		case err := <-errc:
			return fmt.Errorf("serve http: %w", err)
		case <-opts.Reload:
			running = a.reload(running, opts)
		}
	}
}

// reload reads opts.ConfigFile again and applies what can change while
// running; for now that is log.level. Other changes are named in a warning
// and wait for a restart. A file that does not load or validate is logged
// and the running configuration kept. It returns the configuration now in
// effect.
func (a *agent) reload(running *config.Config, opts Options) *config.Config {
	goalsOK := a.reloadGoals()
	if opts.ConfigFile == "" {
		a.logger.Info("reload requested but no --config.file was given; nothing else to do")
		return running
	}
	next, err := LoadConfig(opts.ConfigFile, opts.Overrides)
	if err != nil {
		a.logger.Error("config reload failed; keeping the running config", "err", err)
		return running
	}
	applied := *running
	var needRestart []string
	for _, path := range config.Changed(running, next) {
		switch path {
		case "log.level":
			if opts.LogLevel == nil {
				needRestart = append(needRestart, path)
				continue
			}
			lvl, _ := config.ParseLevel(next.Log.Level) // validated by LoadConfig
			opts.LogLevel.Set(lvl)
			applied.Log.Level = next.Log.Level
			a.logger.Info("log level changed", "level", next.Log.Level)
		default:
			needRestart = append(needRestart, path)
		}
	}
	if len(needRestart) > 0 {
		a.logger.Warn("config changes take effect only after a restart", "settings", strings.Join(needRestart, ","))
	}
	if goalsOK {
		a.logger.Info("config reloaded", "file", opts.ConfigFile)
	} else {
		a.logger.Warn("config reloaded, but not the goals file: the goals in force stay (see the error above)", "file", opts.ConfigFile)
	}
	return &applied
}
