package docgen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/diagnose"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/config"
)

// writeDecisionReport writes the decision report reference: the JSON
// fields of report.Decision with their doc comments, and an example made
// by the real rules and ladder, written by a real report.Store.
func writeDecisionReport(w io.Writer, src *source) error {
	fields, err := jsonReference(src, reflect.TypeFor[report.Decision]())
	if err != nil {
		return err
	}
	d, err := exampleDecision()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nerve-docs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := report.Open(dir, 0)
	if err != nil {
		return err
	}
	if err := st.Save(d); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("the store wrote %d files, want 1 (%v)", len(files), err)
	}
	saved, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}

	fmt.Fprint(w, "# Decision report\n\n")
	fmt.Fprint(w, "Every decision of the actuator is kept as one JSON file in `actuator.state_dir`/decisions\n"+
		"(named `<time>_<id>.json`; the last 500 are kept), served by the agent at `GET /decisions`\n"+
		"(newest first; `?limit=1-1000`, `?since=RFC3339`) and `GET /decisions/{id}`, sent to the\n"+
		"manager's history when the agent uses one, and printed by `nerve status` (readable) and\n"+
		"`nerve status --json` (this format). The fields are those of `report.Decision`\n"+
		"(`actuator/report`), described by their doc comments.\n\n")
	fmt.Fprint(w, "## Fields\n\n| field | type | description |\n|---|---|---|\n")
	for _, f := range fields {
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", f.path, f.typ, cell(f.desc))
	}
	fmt.Fprint(w, "\nTimes are RFC 3339 in UTC; durations (`for`) are integer nanoseconds, as Go's encoding/json\n"+
		"writes them.\n\n")
	fmt.Fprint(w, "## Example\n\nA slow drive, as the real rules diagnose it from the default goals and the real ladder\n"+
		"plans it with rungs 1-4 in enforce mode, `actuator.nodetool` and `actuator.transfer_hook` set;\n"+
		"the steps and the outcome are made up. The file the store writes:\n\n")
	fmt.Fprintf(w, "```json\n%s```\n\n", saved)
	fmt.Fprintf(w, "`nerve status` prints it as:\n\n```\n%s```\n", report.Text(d))
	return nil
}

// exampleDecision is a slow-drive decision: the diagnosis from the real
// rules fed a drive whose own latency is 85 ms, the plan from the real
// ladder over the agent's real action catalog.
func exampleDecision() (report.Decision, error) {
	t0 := time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)
	e := diagnose.New(goals.Default())
	var diag actuator.Diagnosis
	var now time.Time
	for i := 0; diag.Kind == "" && i < 100; i++ {
		now = t0.Add(time.Duration(i) * 5 * time.Second)
		s := actuator.Sample{
			At: now,
			Devices: map[string]actuator.DeviceSample{"sdb": {
				ServiceIdleP99: 0.085, ServiceIdleN: 240, ServiceP99: 0.09, QueueP99: 0.004, IOPS: 310,
			}},
			RunQueueP99: 0.0004, PageFaultStallP99: 0.00002,
			Context: map[string]float64{"cpu.busy": 0.31, "psi.io.some": 0.12, "mem.available_bytes": 12.5e9},
		}
		for _, c := range e.Step(s) {
			if c.Entered && c.Diagnosis.Kind == actuator.SlowDrive {
				diag = c.Diagnosis
			}
		}
	}
	if diag.Kind == "" {
		return report.Decision{}, errors.New("the rules never diagnosed the example's slow drive")
	}
	ac := config.Default().Actuator
	ac.Nodetool = "/usr/bin/nodetool"
	ac.TransferHook = []string{"/usr/local/bin/cassandra-transfer", "--to-spare"}
	modes := map[actuator.Rung]actuator.Mode{}
	for r := actuator.LiveControl; r <= actuator.TransferAndExit; r++ {
		modes[r] = actuator.Enforce
	}
	l, err := ladder.New(ladder.Config{Modes: modes}, agent.ActionInfos(ac))
	if err != nil {
		return report.Decision{}, err
	}
	plan, err := l.Decide(diag, now)
	if err != nil {
		return report.Decision{}, err
	}
	step := func(name string, start, d time.Duration) journal.StepRecord {
		return journal.StepRecord{Name: name, State: journal.Done, Runs: 1, Started: now.Add(start), Ended: now.Add(start + d)}
	}
	return report.Decision{
		ID:        now.Format("20060102T150405.000") + "-slow_drive-sdb",
		At:        now,
		Plan:      plan,
		Context:   diag.Context,
		LockToken: 42,
		Steps: []journal.StepRecord{
			step(strings.Join(ac.TransferHook, " "), time.Second, 38*time.Minute),
		},
		Outcome: "done",
	}, nil
}

// jsonField is one field of a JSON document encoding/json writes.
type jsonField struct {
	path, typ, desc string
}

// jsonReference lists the fields encoding/json writes for t, described by
// the doc comments of the Go fields, or of their types. A field that
// neither describes is an error.
func jsonReference(src *source, t reflect.Type) ([]jsonField, error) {
	w := &jsonWalker{src: src}
	td, err := src.typeOf(t)
	if err != nil {
		return nil, err
	}
	if err := w.walk("", t, td); err != nil {
		return nil, err
	}
	if len(w.missing) > 0 {
		return nil, fmt.Errorf("no description for %s: add a doc comment to the Go field", strings.Join(w.missing, ", "))
	}
	return w.fields, nil
}

type jsonWalker struct {
	src     *source
	fields  []jsonField
	missing []string
}

func (w *jsonWalker) walk(prefix string, t reflect.Type, td *typeDocs) error {
	names := jsonNames(t)
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		ft := f.Type
		ftd, err := w.src.typeOf(ft)
		if err != nil {
			return err
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			if err := w.walk(prefix, ft, ftd); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		path := prefix + name
		desc := sentence(renameGo(td.fieldDoc("", f.Name), names))
		if ftd != nil && ftd.doc != "" && (desc == "" || ft.Kind() == reflect.Struct && ft != timeType) {
			// The type says what the field is; the field's own comment,
			// if any, adds how this field uses it.
			desc = joinDoc(leadingName(ftd.doc, ft.Name(), name), desc)
		}
		if desc == "" {
			w.missing = append(w.missing, path)
		}
		elem := ft
		if ft.Kind() == reflect.Slice {
			elem = ft.Elem()
		}
		if etd, err := w.src.typeOf(elem); err == nil && etd != nil && len(etd.enum) > 0 {
			var vals []string
			for _, v := range etd.enum {
				s := "`" + v.value + "`"
				if v.doc != "" {
					s += ": " + strings.Join(strings.Fields(v.doc), " ")
				}
				vals = append(vals, s)
			}
			desc = joinDoc(desc, "Values: "+strings.Join(vals, "; ")+".")
		}
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "omitempty":
				desc = joinDoc(desc, "Left out when empty.")
			case "omitzero":
				desc = joinDoc(desc, "Left out when zero.")
			}
		}
		w.fields = append(w.fields, jsonField{path: path, typ: jsonType(ft), desc: desc})
		switch {
		case ft.Kind() == reflect.Struct && ft != timeType:
			err = w.walk(path+".", ft, ftd)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			var etd *typeDocs
			if etd, err = w.src.typeOf(ft.Elem()); err == nil {
				err = w.walk(path+"[].", ft.Elem(), etd)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jsonNames maps t's Go field names to their JSON names.
func jsonNames(t reflect.Type) map[string]string {
	names := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" && name != f.Name {
			names[f.Name] = name
		}
	}
	return names
}

func jsonType(t reflect.Type) string {
	switch {
	case t == timeType:
		return "string (time)"
	case t == durationType:
		return "integer (ns)"
	case t.Kind() == reflect.Slice:
		return "array of " + plural(strings.TrimPrefix(jsonType(t.Elem()), "an "))
	case t.Kind() == reflect.Map:
		return "object of " + plural(jsonType(t.Elem()))
	case t.Kind() == reflect.Struct:
		return "object"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.String:
		return "string"
	}
	return t.String()
}
