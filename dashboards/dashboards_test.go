package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/nervehq/nerve/internal/privtest"
)

// The committed JSON is what the Go definitions render: an edit to a .json
// file by hand would be lost at the next `go generate`, and an edit to the
// Go without regenerating would never reach operators.
func TestGenerated(t *testing.T) {
	var want []string
	for _, d := range All() {
		want = append(want, d.File)
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d.File)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./dashboards)", d.File, err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s differs from what %s renders: run go generate ./dashboards", d.File, d.UID)
		}
	}
	files, _ := filepath.Glob("*.json")
	for _, f := range files {
		if !slices.Contains(want, f) {
			t.Errorf("%s is not rendered by any dashboard of All()", f)
		}
	}
}

// Every dashboard imports into any Grafana with a Prometheus data source:
// current schema, every query on the ${datasource} variable, every variable a
// query uses defined, panels inside the 24-column grid.
func TestDashboardShape(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.SchemaVersion < 39 {
				t.Errorf("schemaVersion %d, want 39 or later", d.SchemaVersion)
			}
			if other, dup := uids[d.UID]; dup || d.UID == "" || len(d.UID) > 40 {
				t.Errorf("uid %q: empty, too long or also in %s", d.UID, other)
			}
			uids[d.UID] = d.file
			vars := d.Templating.List
			if len(vars) == 0 || vars[0].Name != "datasource" || vars[0].Type != "datasource" || vars[0].Query != "prometheus" {
				t.Fatalf("the first variable must be datasource, of type datasource, query prometheus")
			}
			defined := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
			for _, v := range vars {
				defined[v.Name] = true
				if v.Type == "query" {
					checkDatasource(t, "variable "+v.Name, v.Datasource)
					if !labelValuesRE.MatchString(fmt.Sprint(v.Query)) {
						t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, v.Query)
					}
				}
			}
			ids := map[int]bool{}
			for _, p := range d.allPanels() {
				if ids[p.ID] {
					t.Errorf("panel id %d twice", p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
				}
				if p.Type == "row" {
					continue
				}
				if p.Description == "" {
					t.Errorf("panel %q has no description", p.Title)
				}
				checkDatasource(t, "panel "+p.Title, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					checkDatasource(t, "panel "+p.Title, tg.Datasource)
				}
			}
			for _, q := range d.queries() {
				for _, m := range varRE.FindAllStringSubmatch(q.expr, -1) {
					if !defined[varName(m)] {
						t.Errorf("%s: $%s is not a variable of the dashboard", q.where, varName(m))
					}
				}
			}
			for _, p := range d.allPanels() {
				for _, m := range varRE.FindAllStringSubmatch(p.Title, -1) {
					if !defined[varName(m)] {
						t.Errorf("panel %q: $%s is not a variable of the dashboard", p.Title, varName(m))
					}
				}
				if p.Repeat != "" && !defined[p.Repeat] {
					t.Errorf("row %q repeats over %s, which is not a variable of the dashboard", p.Title, p.Repeat)
				}
			}
		})
	}
}

func checkDatasource(t *testing.T, where string, ds *dsRef) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		t.Errorf("%s: datasource %+v, want prometheus ${datasource}", where, ds)
	}
}

// The rules load, and their unit tests (rules/*_test.yml) pass.
func TestRules(t *testing.T) {
	privtest.Tools(t, "promtool")
	files := ruleFiles(t)
	out, err := exec.Command("promtool", append([]string{"check", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob("rules/*_test.yml")
	if len(tests) == 0 {
		t.Fatal("no rules/*_test.yml")
	}
	out, err = exec.Command("promtool", append([]string{"test", "rules"}, tests...)...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
	// Every alert has a unit test.
	var text strings.Builder
	for _, f := range tests {
		b, _ := os.ReadFile(f)
		text.Write(b)
	}
	for _, r := range loadRules(t) {
		if r.Alert != "" && !strings.Contains(text.String(), "alertname: "+r.Alert+"\n") &&
			!strings.Contains(text.String(), "alertname: "+r.Alert+",") {
			t.Errorf("alert %s has no promtool unit test", r.Alert)
		}
	}
}

// Grafana's JSON, as much of it as the tests read.
type dashboardJSON struct {
	file          string
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Annotations   struct {
		List []struct {
			Name       string `json:"name"`
			Expr       string `json:"expr"`
			BuiltIn    int    `json:"builtIn"`
			Datasource *dsRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Datasource *dsRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panelJSON `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panelJSON struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Repeat      string `json:"repeat"`
	Datasource  *dsRef `json:"datasource"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Instant    bool   `json:"instant"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	Panels []panelJSON `json:"panels"` // a collapsed row's
}

func loadDashboards(t *testing.T) []dashboardJSON {
	t.Helper()
	var out []dashboardJSON
	for _, d := range All() {
		b, err := os.ReadFile(d.File)
		if err != nil {
			t.Fatal(err)
		}
		var dj dashboardJSON
		if err := json.Unmarshal(b, &dj); err != nil {
			t.Fatalf("%s: %v", d.File, err)
		}
		dj.file = d.File
		out = append(out, dj)
	}
	return out
}

func (d dashboardJSON) allPanels() []panelJSON {
	var out []panelJSON
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// query is one PromQL expression of a dashboard or a rule file.
type query struct {
	where   string
	expr    string
	instant bool
	// alert marks an alert's condition, which is empty on a healthy node.
	alert string
	// emptyOK says why the query may be empty over a run (TestLive).
	emptyOK string
}

func (d dashboardJSON) queries() []query {
	var out []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{where: fmt.Sprintf("%s: panel %q query %s", d.file, p.Title, tg.RefID), expr: tg.Expr, instant: tg.Instant})
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 0 {
			out = append(out, query{where: fmt.Sprintf("%s: annotation %q", d.file, a.Name), expr: a.Expr})
		}
	}
	return out
}

var (
	// $name or ${name}, as Grafana substitutes them.
	varRE = regexp.MustCompile(`\$(?:\{(\w+)\}|(\w+))`)
	// label_values(<selector>, <label>)
	labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
)

func varName(m []string) string { return m[1] + m[2] }

// rule is one rule of rules/*.yml.
type rule struct {
	file, group   string
	Record, Alert string
	Expr          string
}

func ruleFiles(t *testing.T) []string {
	t.Helper()
	all, _ := filepath.Glob("rules/*.yml")
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.yml") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no rules/*.yml")
	}
	return out
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var out []rule
	for _, f := range ruleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Record string `yaml:"record"`
					Alert  string `yaml:"alert"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				out = append(out, rule{file: f, group: g.Name, Record: r.Record, Alert: r.Alert, Expr: r.Expr})
			}
		}
	}
	return out
}

func (r rule) query() query {
	q := query{where: fmt.Sprintf("%s: record %s", r.file, r.Record), expr: r.Expr}
	if r.Alert != "" {
		q.where, q.alert = fmt.Sprintf("%s: alert %s", r.file, r.Alert), r.Alert
	}
	return q
}
