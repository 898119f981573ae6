package main

// `nerve drill`: flags, signals and output; the drills are internal/drill.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nervehq/nerve/internal/drill"
)

// A drill starts its helper processes by running this binary again.
func init() { drill.RunHelper() }

// drillCLI holds the flags of `nerve drill`, filled by kingpin.
type drillCLI struct {
	names   *[]string
	json    *bool
	scratch *string
}

func addDrillCommand(app *kingpin.Application) *drillCLI {
	c := app.Command("drill", "Create each fault nerve detects on scratch devices, cgroups and processes of its own, "+
		"run the real probes and rules in advise mode, and report the diagnosis, the action and the time to detect. "+
		"Exit status 0 only when every diagnosis matched.")
	return &drillCLI{
		names: c.Arg("drill", "Drills: "+strings.Join(drill.Names, ", ")+"; all runs them all. "+
			"Controls (a healthy busy machine: no diagnosis may enter): "+strings.Join(drill.Controls, ", ")+". "+
			"Mixed cases (two faults at once, each told apart): "+strings.Join(drill.Mixed, ", ")+". "+
			"scenarios runs drills, controls and mixed cases.").
			Required().Enums(slices.Concat([]string{"all", "scenarios"}, drill.Scenarios)...),
		json:    c.Flag("json", "Print the report as JSON.").Bool(),
		scratch: c.Flag("scratch", "Scratch directory: what the drill makes, and its records for cleaning up after a crash.").Default(drill.DefaultScratch).String(),
	}
}

func (d *drillCLI) run(stdout, stderr io.Writer, inv invocation) int {
	// The probes log at info when they start: noise here, unless
	// --log.level asks for it (debug also logs every sample).
	level := "warn"
	if inv.overrides.LogLevel != nil {
		level = *inv.overrides.LogLevel
	}
	logger, err := newLogger(stderr, inv.logFormat, level)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A second signal kills a cleanup that hangs.
	context.AfterFunc(ctx, stop)

	tty := false
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	rep, err := drill.Run(ctx, drill.Options{Drills: *d.names, Scratch: *d.scratch, Progress: stderr, Overwrite: tty, Logger: logger})
	if rep != nil {
		if *d.json {
			rep.WriteJSON(stdout)
		} else {
			rep.WriteText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitFailure
	}
	if !rep.Passed {
		return exitFailure
	}
	return exitOK
}
