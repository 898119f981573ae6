package main

// `nerve docs`, hidden: writes the generated reference (docs/) from this
// binary's own command line, configuration, registries and decision report,
// as Prometheus's --write-documentation does for its command line. The
// generator is internal/docgen; `make docs` and `make check-docs` run it.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nervehq/nerve/internal/docgen"
)

// docsCLI holds the docs command's flags, filled by kingpin.
type docsCLI struct {
	out, source *string
}

func addDocsCommand(app *kingpin.Application) *docsCLI {
	cmd := app.Command("docs", "Write the generated reference documentation (command line, configuration, goals, metrics, "+
		"decision report) into a directory. Starts the probes to list their metrics, so it needs root. make docs runs it.").Hidden()
	return &docsCLI{
		out:    cmd.Flag("out", "Directory to write into; it must exist.").Default("docs").PlaceHolder("DIR").String(),
		source: cmd.Flag("source", "The nerve source tree this binary was built from: its doc comments and default files describe the settings.").Default(".").PlaceHolder("DIR").String(),
	}
}

func (d *docsCLI) run(stderr io.Writer, inv invocation) int {
	// The probes log at info when they start: noise here.
	level := "warn"
	if inv.overrides.LogLevel != nil {
		level = *inv.overrides.LogLevel
	}
	logger, err := newLogger(stderr, inv.logFormat, level)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	if fi, err := os.Stat(*d.out); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "nerve: --out %s: not a directory\n", *d.out)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = docgen.Generate(ctx, docgen.Options{Out: *d.out, Source: *d.source, CLI: inv.model(), Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitFailure
	}
	return exitOK
}
