// Command nerve is the eBPF node-health agent for Cassandra nodes. This file
// only parses flags, builds the logger, wires signals and maps errors to exit
// codes; the agent itself is internal/agent.
//
// Exit codes: 0 after a clean stop, 1 when the agent fails while starting or
// running, 2 for a usage or configuration error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/buildinfo"
	"github.com/nervehq/nerve/internal/config"
)

// Set at link time: -ldflags "-X main.version=1.0.0 -X main.revision=$(git rev-parse HEAD)".
var (
	version  = "dev"
	revision = ""
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	inv, code, ok := parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch inv.command {
	case "version":
		fmt.Fprint(stdout, versionText())
		return exitOK
	case "agent":
		return runAgent(stderr, inv)
	case "status":
		return runStatus(stdout, stderr, inv)
	case "preflight":
		return inv.preflight.run(stdout, stderr, inv)
	case "drill":
		return inv.drill.run(stdout, stderr, inv)
	case "docs":
		return inv.docs.run(stderr, inv)
	case "report":
		return inv.report.run(stdout, stderr, inv)
	}
	if inv.manager.handles(inv.command) {
		return inv.manager.run(inv.command, stdout, stderr, inv)
	}
	fmt.Fprintf(stderr, "nerve: unknown command %q\n", inv.command)
	return exitUsage
}

// invocation is what the command line asks for.
type invocation struct {
	command    string // "agent", "version", "lock acquire", ...
	logFormat  string
	logLevel   string // as given, or the default; the agent takes it from overrides
	configFile string
	// overrides holds the flags the user gave, and only those: a flag left
	// at its default must not override the config file.
	overrides agent.Overrides

	statusAddr  string
	statusLimit int
	statusJSON  bool

	preflight *preflightCLI // the preflight command's flags

	manager *managerCLI // the manager commands' flags
	drill   *drillCLI   // the drill command's flags
	docs    *docsCLI    // the docs command's flags
	report  *reportCLI  // the report command's flags

	// model is the command line's model, for `nerve docs`.
	model func() *kingpin.ApplicationModel
}

// appHelp is the help of `nerve --help`: what nerve is, and its exit
// status, which run and main map every error to.
const appHelp = `eBPF node-health agent for Cassandra nodes: probes the node with eBPF, diagnoses against goals, acts through an action ladder, and coordinates risky actions through a Raft rack-lock manager. Reference: docs/ in the source tree.

Exit status 0: the command did what it was asked; for the agent and a manager replica, a clean stop after SIGINT or SIGTERM. --help exits 0 too.

Exit status 1: a runtime failure: the agent or a replica failed to start or stopped on an error, the agent or a manager could not be reached or refused the request, a preflight check failed, a drill's diagnosis did not match.

Exit status 2: bad usage or configuration: no or an unknown command, an unknown flag, a bad flag value (--log.level, --log.format included), a configuration or goals file that does not load or validate.`

// cli is the command line: kingpin's model of it, and where kingpin puts
// what it parses.
type cli struct {
	app *kingpin.Application
	// set records which agent flags the user gave.
	set struct{ listen, path, level, strict, stats bool }

	logLevel, logFormat               *string
	configFile, listen, telemetryPath *string
	embedded                          *string
	strict, bpfStats                  *bool
	statusAddr                        *string
	statusLimit                       *int
	statusJSON                        *bool
	manager                           *managerCLI
	preflight                         *preflightCLI
	drill                             *drillCLI
	docs                              *docsCLI
	report                            *reportCLI
}

// newCLI declares every command and flag.
func newCLI() *cli {
	def := config.Default()
	c := &cli{app: kingpin.New("nerve", appHelp)}
	app := c.app
	app.HelpFlag.Short('h')
	c.logLevel = app.Flag("log.level", "Log level: debug, info, warn or error. Overrides log.level of the config file.").
		Default(def.Log.Level).IsSetByUser(&c.set.level).String()
	c.logFormat = app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").String()

	agentCmd := app.Command("agent", "Run the node agent: attach the probes and serve their metrics.")
	c.configFile = agentCmd.Flag("config.file", "YAML configuration file; without it the built-in defaults apply. Reloaded on SIGHUP.").
		PlaceHolder("PATH").String()
	c.listen = agentCmd.Flag("web.listen-address", "Address to serve metrics on. Overrides web.listen_address.").
		Default(def.Web.ListenAddress).IsSetByUser(&c.set.listen).String()
	c.telemetryPath = agentCmd.Flag("web.telemetry-path", "Path to serve metrics at. Overrides web.telemetry_path.").
		Default(def.Web.TelemetryPath).IsSetByUser(&c.set.path).String()
	c.strict = agentCmd.Flag("probes.strict", "Fail start when any enabled probe cannot attach. Overrides probes.strict.").
		IsSetByUser(&c.set.strict).Bool()
	c.embedded = agentCmd.Flag("manager", `"embedded" runs a single-replica rack-lock manager inside the agent (a one-box trial) and takes rack locks from it.`).
		PlaceHolder("embedded").Enum("embedded")
	c.bpfStats = agentCmd.Flag("bpf-stats", "Enable kernel BPF run-time statistics while the agent runs. Overrides bpf_stats.").
		IsSetByUser(&c.set.stats).Bool()
	app.Command("version", "Print the version, the revision, the Go version and the SHA-256 of the embedded BPF objects, and exit.")
	statusCmd := app.Command("status", "Print the running agent's latest decisions: what was wrong, the evidence, the rungs considered, the outcome.")
	c.statusAddr = statusCmd.Flag("agent.address", "The agent's web address.").Default(def.Web.ListenAddress).String()
	c.statusLimit = intFlag(statusCmd.Flag("limit", "How many decisions, newest first (1-1000).").Default("10"), "limit")
	c.statusJSON = statusCmd.Flag("json", "Print the decisions as JSON.").Bool()
	c.manager = addManagerCommands(app)
	c.preflight = addPreflightCommand(app)
	c.drill = addDrillCommand(app)
	c.docs = addDocsCommand(app)
	c.report = addReportCommand(app)
	return c
}

// parse parses args. When it returns ok false, the usage or error has been
// printed and code is the exit code. --help prints and exits 0 inside kingpin.
func parse(args []string, stdout, stderr io.Writer) (inv invocation, code int, ok bool) {
	c := newCLI()
	app := c.app
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)

	if len(args) == 0 {
		// kingpin would print the usage and exit 0; a bare "nerve" in a
		// unit file is a mistake, so it gets the usage on stderr and 2.
		app.UsageWriter(stderr)
		app.Usage(nil)
		return inv, exitUsage, false
	}
	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v (try --help)\n", err)
		return inv, exitUsage, false
	}
	// Checked for every command, even those that do not log, so that a
	// typo in a unit file shows the first time it runs.
	if err := checkLogFlags(*c.logFormat, *c.logLevel); err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return inv, exitUsage, false
	}

	inv = invocation{command: cmd, logFormat: *c.logFormat, logLevel: *c.logLevel, configFile: *c.configFile,
		statusAddr: *c.statusAddr, statusLimit: *c.statusLimit, statusJSON: *c.statusJSON, manager: c.manager, drill: c.drill,
		docs: c.docs, report: c.report, model: app.Model}
	inv.preflight = c.preflight
	o := &inv.overrides
	o.EmbeddedManager = *c.embedded == "embedded"
	if c.set.listen {
		o.ListenAddress = c.listen
	}
	if c.set.path {
		o.TelemetryPath = c.telemetryPath
	}
	if c.set.level {
		o.LogLevel = c.logLevel
	}
	if c.set.strict {
		o.ProbesStrict = c.strict
	}
	if c.set.stats {
		o.BPFStats = c.bpfStats
	}
	return inv, exitOK, true
}

func runAgent(stderr io.Writer, inv invocation) int {
	if err := checkLogFormat(inv.logFormat); err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	cfg, err := agent.LoadConfig(inv.configFile, inv.overrides)
	if err == nil {
		err = agent.CheckGoals(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	level := new(slog.LevelVar)
	lvl, _ := config.ParseLevel(cfg.Log.Level) // validated by LoadConfig
	level.Set(lvl)
	logger := slogger(stderr, inv.logFormat, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first SIGINT or SIGTERM, restore the default action so a
	// second one kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	logger.Info("starting nerve agent", "version", version, "config", configFileName(inv.configFile))
	err = agent.Run(ctx, logger, cfg, agent.Options{
		ConfigFile: inv.configFile,
		Overrides:  inv.overrides,
		LogLevel:   level,
		Reload:     hup,
		Version:    version,
		Revision:   buildRevision(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}

func checkLogFormat(format string) error {
	if format != "logfmt" && format != "json" {
		return fmt.Errorf("--log.format must be logfmt or json, got %q", format)
	}
	return nil
}

// checkLogFlags checks --log.format and --log.level.
func checkLogFlags(format, level string) error {
	if err := checkLogFormat(format); err != nil {
		return err
	}
	if _, err := config.ParseLevel(level); err != nil {
		return fmt.Errorf("--log.level %w", err)
	}
	return nil
}

func slogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// newLogger is the logger of a command without a config file: the level
// and format flags only.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	if err := checkLogFormat(format); err != nil {
		return nil, err
	}
	lvl, err := config.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	return slogger(w, format, lvl), nil
}

func configFileName(path string) string {
	if path == "" {
		return "built-in defaults"
	}
	return path
}

// versionText is what `nerve version` prints: the version, the revision,
// the Go toolchain and platform on the first line (unchanged since the
// first release, for scripts), then the SHA-256 of the embedded BPF
// objects, as nerve_build_info{bpf_object_sha256} exports it.
func versionText() string {
	return fmt.Sprintf("nerve %s (revision %s, %s %s/%s)\nbpf_object_sha256 %s\n",
		version, buildRevision(), runtime.Version(), runtime.GOOS, runtime.GOARCH, buildinfo.BPFObjectSHA256())
}

// buildRevision is the link-time revision, else the VCS revision the Go
// toolchain recorded, else "unknown".
func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// runStatus prints the latest decisions of the agent at inv.statusAddr.
func runStatus(stdout, stderr io.Writer, inv invocation) int {
	if inv.statusLimit < 1 || inv.statusLimit > 1000 {
		fmt.Fprintf(stderr, "nerve: --limit must be 1 to 1000, got %d\n", inv.statusLimit)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := report.Fetch(ctx, inv.statusAddr, inv.statusLimit)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitFailure
	}
	if inv.statusJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ds); err != nil {
			fmt.Fprintf(stderr, "nerve: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if len(ds) == 0 {
		fmt.Fprintln(stdout, "no decisions: nothing has been diagnosed")
		return exitOK
	}
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprint(stdout, report.Text(d))
	}
	return exitOK
}
