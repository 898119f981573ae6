package main

// `nerve report`: the flight recorder's outliers from a running agent, as a
// readable incident summary, as JSON, or as a .tar.gz for a ticket. The
// report itself (filters, summary, text, archive) is probes/flight; this
// file parses the flags, asks the agent and writes the result.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/probes/flight"
)

// reportTimeout bounds the whole conversation with the agent.
const reportTimeout = 30 * time.Second

// reportCLI holds the report command's flags, filled by kingpin.
type reportCLI struct {
	addr         *string
	since, until *string
	pid          *int
	device       *string
	signal       *string
	id           *string
	json         *bool
	out          *string
	limit, top   *int
	set          struct{ since, until, pid, device, signal bool }
}

// addReportCommand registers the command on app.
func addReportCommand(app *kingpin.Application) *reportCLI {
	def := config.Default()
	signals := make([]string, len(flight.Signals))
	for i, s := range flight.Signals {
		signals[i] = string(s)
	}
	r := &reportCLI{}
	cmd := app.Command("report", "Print the running agent's recent outliers (slow block I/O, run-queue waits, page-fault stalls, safepoints) as an incident summary: who suffered, on which device, file or VM operation, and the slowest events.")
	r.addr = cmd.Flag("agent.address", "The agent's web address.").Default(def.Web.ListenAddress).String()
	r.since = cmd.Flag("since", "Start of the window: a duration before now (10m, 90s) or an RFC 3339 time.").
		Default("10m").IsSetByUser(&r.set.since).String()
	r.until = cmd.Flag("until", "End of the window, in the same forms; default now.").PlaceHolder("TIME").IsSetByUser(&r.set.until).String()
	r.pid = intFlag(cmd.Flag("pid", "Only the outliers this process suffered.").PlaceHolder("PID").IsSetByUser(&r.set.pid), "pid")
	r.device = cmd.Flag("device", "Only the block I/O outliers of this device (sda, nvme0n1, loop3).").PlaceHolder("DEVICE").IsSetByUser(&r.set.device).String()
	r.signal = cmd.Flag("signal", "Only this signal's outliers: blockio, runqueue, pagefault or safepoint.").PlaceHolder("SIGNAL").IsSetByUser(&r.set.signal).Enum(signals...)
	r.id = cmd.Flag("id", "A decision's id (nerve status): its bundle, the outliers kept with the decision, instead of the live recorder; not with the window and filter flags.").PlaceHolder("ID").String()
	r.json = cmd.Flag("json", "Print the report as JSON: the summary and the raw events.").Bool()
	r.out = cmd.Flag("out", "Write the report as a .tar.gz for a ticket (summary.json, events.json, decisions.json, report.txt) instead of printing it.").PlaceHolder("FILE").String()
	r.limit = intFlag(cmd.Flag("limit", fmt.Sprintf("Raw events fetched per signal, the slowest (1-%d); the summary covers all.", flight.MaxLimit)).Default(strconv.Itoa(flight.DefaultLimit)), "limit")
	r.top = intFlag(cmd.Flag("top", "How many of the slowest events the readable report lists.").Default("20"), "top")
	return r
}

// query checks the flags and turns them into the agent's query. Errors name
// the flag.
func (r *reportCLI) query(now time.Time) (flight.Query, error) {
	if *r.id != "" {
		if r.set.since || r.set.until || r.set.pid || r.set.device || r.set.signal {
			return flight.Query{}, errors.New("--id shows a decision's bundle as it was kept; --since, --until, --pid, --device and --signal pick from the live recorder: give one or the other")
		}
		return flight.Query{}, nil
	}
	v := url.Values{"since": {*r.since}, "limit": {strconv.Itoa(*r.limit)}}
	if r.set.until {
		v.Set("until", *r.until)
	}
	if r.set.pid {
		v.Set("pid", strconv.Itoa(*r.pid))
	}
	if r.set.device {
		v.Set("device", *r.device)
	}
	if r.set.signal {
		v.Set("signal", *r.signal)
	}
	q, err := flight.ParseQuery(v, now)
	var pe *flight.ParamError
	if errors.As(err, &pe) {
		return flight.Query{}, fmt.Errorf("--%s %s", pe.Param, pe.Msg)
	}
	return q, err
}

func (r *reportCLI) run(stdout, stderr io.Writer, _ invocation) int {
	if *r.top < 0 {
		fmt.Fprintf(stderr, "nerve: --top must not be negative, got %d\n", *r.top)
		return exitUsage
	}
	q, err := r.query(time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	c := flight.Client{Addr: *r.addr}
	var rep flight.Report
	if *r.id != "" {
		rep, err = c.Bundle(ctx, *r.id)
	} else {
		rep, err = c.Live(ctx, q)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitFailure
	}

	if *r.out != "" {
		decisions, err := c.Decisions(ctx, *r.id, rep.Filter.Since)
		if err != nil {
			fmt.Fprintf(stderr, "nerve: %v\n", err)
			return exitFailure
		}
		if err := writeArchive(*r.out, rep, decisions); err != nil {
			fmt.Fprintf(stderr, "nerve: %v\n", err)
			return exitFailure
		}
		var n []json.RawMessage
		json.Unmarshal(decisions, &n)
		fmt.Fprintf(stdout, "wrote %s: %d outliers (%d raw), %d decisions\n", *r.out, rep.Matched, len(rep.Events), len(n))
		return exitOK
	}
	if *r.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "nerve: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprint(stdout, flight.Text(rep, *r.top))
	return exitOK
}

// writeArchive writes the archive next to path and renames it into place,
// so that path is never half written.
func writeArchive(path string, rep flight.Report, decisions json.RawMessage) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails once renamed
	if err := flight.WriteArchive(f, rep, decisions); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
