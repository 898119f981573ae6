package docgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/privtest"
)

// root is the module's root, two levels up from this package.
const root = "../.."

func TestConfigurationAndGoals(t *testing.T) {
	for name, write := range map[string]func(*bytes.Buffer, *source) error{
		"configuration": func(b *bytes.Buffer, s *source) error { return writeConfiguration(b, s) },
		"goals":         func(b *bytes.Buffer, s *source) error { return writeGoals(b, s) },
	} {
		t.Run(name, func(t *testing.T) {
			var first, second bytes.Buffer
			if err := write(&first, newSource(root)); err != nil {
				t.Fatal(err)
			}
			if err := write(&second, newSource(root)); err != nil {
				t.Fatal(err)
			}
			if first.String() != second.String() {
				t.Error("two runs differ")
			}
		})
	}
	var b bytes.Buffer
	if err := writeConfiguration(&b, newSource(root)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## `web`", "### `web.listen_address`\n\n*string*, default `\":19648\"`",
		"### `probes.jvm.thrash.threshold`\n\n*duration*, default `30s`",
		"### `actuator.rungs`\n\n*mapping of integer to string*, default `{1: enforce, 2: enforce, 3: advise, 4: advise, 5: advise}`",
		"### `targets[].name`", "### `manager.lease`\n\n*duration*, default `1m`",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("configuration reference lacks %q", want)
		}
	}
}

// documented and undocumented are declared, with their comments, in the
// source tree the test writes; their Go declarations here are what the
// reference walks.
type documented struct {
	Good  int    `yaml:"good"`
	Other string `yaml:"other"`
}

func TestYAMLReferenceNeedsDescriptions(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "internal", "docgen")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package docgen\n\n// documented is a test type.\ntype documented struct {\n\t// Good is described.\n\tGood int `yaml:\"good\"`\n\tOther string `yaml:\"other\"`\n}\n"
	if err := os.WriteFile(filepath.Join(pkg, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	def := documented{Good: 3}
	_, err := yamlReference(newSource(dir), &def, []byte("good: 3\n"))
	if err == nil || !strings.Contains(err.Error(), "no description for other") {
		t.Fatalf("err = %v, want one naming the key other", err)
	}
	d, err := yamlReference(newSource(dir), &def, []byte("good: 3\nother: \"\" # a comment describes it\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []yamlKey{
		{path: "good", typ: "integer", def: "3", desc: "`good` is described."},
		{path: "other", typ: "string", def: `""`, desc: "A comment describes it."},
	}
	if !reflect.DeepEqual(d.keys, want) {
		t.Errorf("keys = %+v, want %+v", d.keys, want)
	}
}

func TestParseDesc(t *testing.T) {
	tests := []struct {
		desc *prometheus.Desc
		want metricDoc
	}{
		{prometheus.NewDesc("a_total", "Plain.", nil, nil), metricDoc{name: "a_total", help: "Plain."}},
		{prometheus.NewDesc("b", `Quotes "x", braces {y}, commas, and a\nnewline.`, []string{"z", "device"}, prometheus.Labels{"version": "1,2", "goversion": "go1"}),
			metricDoc{name: "b", help: `Quotes "x", braces {y}, commas, and a\nnewline.`, labels: []string{"device", "goversion", "version", "z"}}},
	}
	for _, tt := range tests {
		got, err := parseDesc(tt.desc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseDesc(%s) = %+v, want %+v", tt.desc, got, tt.want)
		}
	}
}

func TestListMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_things", Help: "Things."}, []string{"kind"})
	g.WithLabelValues("a").Set(1)
	reg.MustRegister(g, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_unseen_total", Help: "Never seen."}, []string{"k"}))
	_, err := listMetrics(reg, reg)
	if err == nil || !strings.Contains(err.Error(), "x_unseen_total exported no series") {
		t.Fatalf("err = %v, want one naming x_unseen_total", err)
	}

	reg = prometheus.NewRegistry()
	reg.MustRegister(g)
	got, err := listMetrics(reg, reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []metricDoc{{name: "x_things", typ: "gauge", help: "Things.", labels: []string{"kind"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("listMetrics = %+v, want %+v", got, want)
	}
	if err := checkConditional(got); err == nil || !strings.Contains(err.Error(), "which no registry describes") {
		t.Errorf("checkConditional: %v, want the stale entries named", err)
	}
}

func TestCLI(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		privtest.Skip(t, "no host name")
	}
	app := kingpin.New("tool", "Does things.\n\nExit status 2: bad usage.")
	app.Flag("log.level", "Log level.").Default("info").String()
	run := app.Command("run", "Run it. Twice.")
	run.Flag("node", "The node.").Default(host).String()
	run.Flag("dry-run", "Do nothing.").Bool()
	run.Flag("peer", "A peer; repeat.").PlaceHolder("HOST:PORT").Strings()
	run.Arg("what", "What to run.").Required().String()
	hidden := app.Command("secret", "Hidden.").Hidden()
	hidden.Flag("x", "X.").String()
	var b bytes.Buffer
	if err := writeCLI(&b, app.Model()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Exit status 2: bad usage.",
		"| `--log.level=LEVEL` | `info` | Log level. |",
		"## `tool run`", "| [`tool run`](#tool-run) | Run it. |",
		"| `--node=NODE` | the host name | The node. |",
		"| `--[no-]dry-run` |  | Do nothing. |",
		"| `--peer=HOST:PORT` |  | A peer; repeat. (Repeatable.) |",
		"| `<what>` | required | What to run. |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("output shows the hidden command:\n%s", out)
	}
}

// The example in the reference is what the store writes, and reads back
// as the decision it was made from.
func TestDecisionReport(t *testing.T) {
	var b bytes.Buffer
	if err := writeDecisionReport(&b, newSource(root)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JSON example:\n%s", out)
	}
	var got report.Decision
	if err := json.Unmarshal([]byte(m[1]), &got); err != nil {
		t.Fatal(err)
	}
	want, err := exampleDecision()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example reads back as %+v, want %+v", got, want)
	}
	if want.Plan.Diagnosis.Kind != "slow_drive" || want.Plan.Action.Name == "" || !want.At.Equal(time.Date(2025, 3, 4, 5, 0, 30, 0, time.UTC)) {
		t.Errorf("example decision = %+v", want)
	}
	for _, field := range []string{"`id`", "`diagnosis.Evidence[].Signal`", "`considered[].why`", "`steps[].state`", "`outcome`"} {
		if !strings.Contains(out, "| "+field+" |") {
			t.Errorf("field table lacks %s", field)
		}
	}
}
