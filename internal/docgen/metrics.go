package docgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager/server"
	"github.com/nervehq/nerve/probes/bpfstats"
	"github.com/nervehq/nerve/probes/targets"
)

// metricDoc is one metric of a registry.
type metricDoc struct {
	name, typ, help string
	labels          []string // names only: values depend on the machine
}

// conditionalTypes are the types of the metrics a registry describes but
// may export no series of when the reference is generated: vectors with no
// child yet, and series that exist only on a fallback or once something
// happened. A metric that is described and not gathered must be listed
// here; one listed here that is gathered must have this type, and one
// listed here that no registry describes is an error, so the list cannot
// go stale.
var conditionalTypes = map[string]string{
	// From the start for the configured actions (none when the
	// documentation's registry has no actuator); others at their first
	// decision.
	"nerve_actions_total": "counter",
	// Per device, once the probe has seen a request on it.
	"nerve_block_errors_total":             "counter",
	"nerve_block_inflight_requests":        "gauge",
	"nerve_block_queue_seconds":            "histogram",
	"nerve_block_queue_time_unknown_total": "counter",
	"nerve_block_requests_total":           "counter",
	"nerve_block_service_seconds":          "histogram",
	// Only where the kernel has PSI.
	"nerve_cpu_pressure_waiting_seconds_total": "counter",
	// Per JVM watched; hsperf ones only for JVMs without USDT probes.
	"nerve_jvm_gc_pause_seconds":               "histogram",
	"nerve_jvm_hsperf_gc_seconds_total":        "counter",
	"nerve_jvm_hsperf_safepoint_seconds_total": "counter",
	"nerve_jvm_hsperf_safepoints_total":        "counter",
	"nerve_jvm_safepoint_seconds":              "histogram",
	"nerve_jvm_stopped_fraction":               "gauge",
	"nerve_jvm_thrash_bucket_seconds":          "gauge",
	"nerve_jvm_thrash_over":                    "gauge",
	"nerve_jvm_time_to_safepoint_seconds":      "histogram",
	"nerve_jvm_vm_operation_seconds":           "histogram",
	"nerve_jvm_watched":                        "gauge",
	// After the first API request.
	"nerve_manager_api_request_duration_seconds": "histogram",
	// Per locked rack, while a grant is held or suspect.
	"nerve_manager_rack_grants": "gauge",
	// Only on the schedstat fallback, when the BPF programs cannot run.
	"nerve_runqueue_wait_seconds_total": "counter",
}

// writeMetrics writes the metrics reference: the agent's registry with
// every probe started, and a manager replica's registry.
func writeMetrics(ctx context.Context, w io.Writer, logger *slog.Logger) error {
	agentMetrics, err := agentMetrics(ctx, logger)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	managerMetrics, err := managerMetrics(logger)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := checkConditional(agentMetrics, managerMetrics); err != nil {
		return err
	}
	isNerve := func(m metricDoc) bool { return strings.HasPrefix(m.name, "nerve_") }
	var own, runtime []metricDoc
	for _, m := range agentMetrics {
		if isNerve(m) {
			own = append(own, m)
		} else {
			runtime = append(runtime, m)
		}
	}
	fmt.Fprint(w, "# Metrics reference\n\n")
	fmt.Fprint(w, "Every metric nerve exports, with its type, its labels and its help, listed from the\n"+
		"registries the agent and a manager replica build, with every probe attached, the actuator on and\n"+
		"BPF statistics on. Some series appear only when there is something to count (a JVM, an\n"+
		"action, a target, a fallback); what each figure includes is in the help, and in the header\n"+
		"comments of the BPF sources (`bpf/`). Label values depend on the machine and are not listed.\n\n")
	fmt.Fprint(w, "## Agent\n\n`nerve agent` serves these at `web.telemetry_path` (`/metrics`) on `web.listen_address`.\n\n")
	writeMetricTable(w, own)
	fmt.Fprint(w, "### Go runtime, process and HTTP handler\n\nFrom the Prometheus Go client's standard collectors.\n\n")
	writeMetricTable(w, runtime)
	fmt.Fprint(w, "## Manager\n\n`nerve manager run` serves these at `/metrics` on its `--http` address (no bearer token needed).\n\n")
	writeMetricTable(w, managerMetrics)
	return nil
}

func writeMetricTable(w io.Writer, ms []metricDoc) {
	fmt.Fprint(w, "| metric | type | labels | help |\n|---|---|---|---|\n")
	for _, m := range ms {
		labels := make([]string, len(m.labels))
		for i, l := range m.labels {
			labels[i] = "`" + l + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", m.name, m.typ, strings.Join(labels, ", "), cell(m.help))
	}
	fmt.Fprintln(w)
}

// agentMetrics lists the metrics of the registry the agent builds, with
// every probe strict (one that cannot attach fails the generation rather
// than leaving its metrics out), the actuator on, BPF statistics on and a
// target configured.
func agentMetrics(ctx context.Context, logger *slog.Logger) ([]metricDoc, error) {
	// The agent carries on without statistics when they cannot be enabled;
	// the reference must not.
	off, err := bpfstats.Enable()
	if err != nil {
		return nil, err
	}
	defer off.Close()
	dir, err := os.MkdirTemp("", "nerve-docs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Probes.Strict = true
	cfg.BPFStats = true
	cfg.Actuator.Enabled = true
	cfg.Actuator.StateDir = filepath.Join(dir, "state")
	cfg.Actuator.DumpDir = filepath.Join(dir, "dumps")
	cfg.Targets = []targets.Target{{Name: "docs", Process: "nerve"}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg, stop, err := agent.Registry(ctx, logger, cfg, agent.Options{Version: "docs", Revision: "docs"})
	if err != nil {
		return nil, err
	}
	defer stop()
	return listMetrics(reg, reg)
}

// managerMetrics lists the metrics of a replica's registry. The replica is
// made, not started: its metrics are registered by New.
func managerMetrics(logger *slog.Logger) ([]metricDoc, error) {
	reg := prometheus.NewRegistry()
	_, trans := raft.NewInmemTransport("")
	_, err := server.NewWithTransport(server.Config{
		ID: "docs", HTTPAddr: "127.0.0.1:0", Tokens: []string{"docs"}, Logger: logger, Registry: reg,
	}, trans)
	if err != nil {
		return nil, err
	}
	return listMetrics(reg, reg)
}

// listMetrics lists what c describes, sorted by name, each with the type
// its gathered series have, or, when g has none, the type
// conditionalTypes gives it.
func listMetrics(c prometheus.Collector, g prometheus.Gatherer) ([]metricDoc, error) {
	descs := make(chan *prometheus.Desc)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	byName := map[string]metricDoc{}
	var errs []error
	for d := range descs {
		m, err := parseDesc(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := byName[m.name]; ok && (prev.help != m.help || !slices.Equal(prev.labels, m.labels)) {
			errs = append(errs, fmt.Errorf("%s is described twice, with different help or labels", m.name))
		}
		byName[m.name] = m
	}
	mfs, err := g.Gather()
	if err != nil {
		errs = append(errs, fmt.Errorf("gather: %w", err))
	}
	for _, mf := range mfs {
		m, ok := byName[mf.GetName()]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is gathered but not described", mf.GetName()))
			continue
		}
		m.typ = typeName(mf.GetType())
		byName[m.name] = m
	}
	var out []metricDoc
	for _, m := range byName {
		if m.typ == "" {
			typ, ok := conditionalTypes[m.name]
			if !ok {
				errs = append(errs, fmt.Errorf("%s exported no series, so its type is unknown: add it to conditionalTypes in internal/docgen/metrics.go", m.name))
			}
			m.typ = typ
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b metricDoc) int { return strings.Compare(a.name, b.name) })
	return out, errors.Join(errs...)
}

// checkConditional checks conditionalTypes against what the registries
// describe and gather.
func checkConditional(lists ...[]metricDoc) error {
	seen := map[string]bool{}
	var errs []error
	for _, ms := range lists {
		for _, m := range ms {
			seen[m.name] = true
			if typ, ok := conditionalTypes[m.name]; ok && typ != m.typ {
				errs = append(errs, fmt.Errorf("%s is a %s, but conditionalTypes says %s", m.name, m.typ, typ))
			}
		}
	}
	for name := range conditionalTypes {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("conditionalTypes lists %s, which no registry describes", name))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

func typeName(t dto.MetricType) string {
	switch t {
	case dto.MetricType_COUNTER:
		return "counter"
	case dto.MetricType_GAUGE:
		return "gauge"
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return "histogram"
	case dto.MetricType_SUMMARY:
		return "summary"
	}
	return "untyped"
}

// parseDesc reads the name, help and label names of d from its String,
// the only way client_golang shows them:
//
//	Desc{fqName: "n", help: "h", unit: "", constLabels: {a="x",b="y"}, variableLabels: {c,c(d)}}
func parseDesc(d *prometheus.Desc) (metricDoc, error) {
	if err := d.Err(); err != nil {
		return metricDoc{}, err
	}
	s := d.String()
	fail := func(what string) (metricDoc, error) {
		return metricDoc{}, fmt.Errorf("cannot read the %s of %s", what, s)
	}
	var m metricDoc
	rest, ok := strings.CutPrefix(s, `Desc{fqName: `)
	if !ok {
		return fail("name")
	}
	var err error
	if m.name, rest, err = unquotePrefix(rest); err != nil {
		return fail("name")
	}
	if rest, ok = strings.CutPrefix(rest, `, help: `); !ok {
		return fail("help")
	}
	if m.help, rest, err = unquotePrefix(rest); err != nil {
		return fail("help")
	}
	if rest, ok = strings.CutPrefix(rest, `, unit: `); ok {
		if _, rest, err = unquotePrefix(rest); err != nil {
			return fail("unit")
		}
	}
	if rest, ok = strings.CutPrefix(rest, `, constLabels: {`); !ok {
		return fail("const labels")
	}
	for !strings.HasPrefix(rest, "}") {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return fail("const labels")
		}
		m.labels = append(m.labels, name)
		if _, rest, err = unquotePrefix(after); err != nil {
			return fail("const labels")
		}
		rest = strings.TrimPrefix(rest, ",")
	}
	vars, ok := strings.CutPrefix(rest, `}, variableLabels: {`)
	if !ok || !strings.HasSuffix(vars, "}}") {
		return fail("variable labels")
	}
	if vars = strings.TrimSuffix(vars, "}}"); vars != "" {
		for v := range strings.SplitSeq(vars, ",") {
			if inner, ok := strings.CutPrefix(v, "c("); ok {
				v = strings.TrimSuffix(inner, ")")
			}
			m.labels = append(m.labels, v)
		}
	}
	slices.Sort(m.labels)
	return m, nil
}

func unquotePrefix(s string) (value, rest string, err error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	value, err = strconv.Unquote(q)
	return value, s[len(q):], err
}
