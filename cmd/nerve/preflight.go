package main

// `nerve preflight`: the hardware checks a new node runs before the
// database starts (ExecStartPre=nerve preflight --config.file=...). The
// checks are internal/preflight; this file parses the flags, loads the
// configuration and the goals, prints the result, records it at the
// manager and maps it to an exit code: 0 when every check passes, 1 with
// one line per failed check, 2 for a usage or configuration error.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/internal/preflight"
)

// recordTimeout bounds recording the result at the manager: a preflight
// must not hold up the start for a manager that is away.
const recordTimeout = 15 * time.Second

// preflightCLI holds the preflight command's flags, filled by kingpin.
type preflightCLI struct {
	configFile *string
	json       *bool
	mounts     *[]string
	peers      *[]string
}

// addPreflightCommand registers the command on app.
func addPreflightCommand(app *kingpin.Application) *preflightCLI {
	cmd := app.Command("preflight", "Check the data drives, the network and the kernel before the database starts; exit 1 when a check fails.")
	return &preflightCLI{
		configFile: cmd.Flag("config.file", "YAML configuration file (its preflight, actuator.data_mounts and manager sections); without it the built-in defaults apply.").
			PlaceHolder("PATH").String(),
		json:   cmd.Flag("json", "Print the result as JSON.").Bool(),
		mounts: cmd.Flag("mount", "A data mount to burn in; repeat for each. Replaces preflight.mounts.").PlaceHolder("PATH").Strings(),
		peers:  cmd.Flag("peer", "A host:port to probe; repeat for each. Replaces preflight.network.peers.").PlaceHolder("HOST:PORT").Strings(),
	}
}

func (p *preflightCLI) run(stdout, stderr io.Writer, inv invocation) int {
	logger, err := newLogger(stderr, inv.logFormat, inv.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	cfg, err := config.Load(*p.configFile)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	if len(*p.mounts) > 0 {
		cfg.Preflight.Mounts = *p.mounts
	}
	if len(*p.peers) > 0 {
		cfg.Preflight.Network.Peers = *p.peers
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	g := goals.Default()
	if cfg.Actuator.GoalsFile != "" {
		if g, err = goals.Load(cfg.Actuator.GoalsFile); err != nil {
			fmt.Fprintf(stderr, "nerve: actuator.goals_file: %v\n", err)
			return exitUsage
		}
	}
	spec, err := preflight.FromConfig(cfg, g)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	if spec.Empty() {
		fmt.Fprintln(stderr, "nerve: preflight has nothing to check: set preflight.mounts (or actuator.data_mounts), preflight.network.peers, manager.endpoints or preflight.bpf")
		return exitUsage
	}
	if len(spec.Mounts) == 0 {
		logger.Warn("no data mounts to burn in: set preflight.mounts or actuator.data_mounts")
	}
	node, err := preflight.NodeName(cfg.Manager)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	mc, err := preflight.ManagerClient(cfg.Manager)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := preflight.Run(ctx, logger, node, spec)
	if *p.json {
		err = printJSON(stdout, res)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
	}
	if mc != nil {
		rctx, cancel := context.WithTimeout(ctx, recordTimeout)
		preflight.RecordOrWarn(rctx, logger, mc, res)
		cancel()
	}
	if res.Pass {
		return exitOK
	}
	for _, r := range res.Failures() {
		fmt.Fprintf(stderr, "nerve: preflight: %s\n", r)
	}
	return exitFailure
}
