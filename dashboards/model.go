package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// SchemaVersion is the Grafana dashboard schema the JSON is written in
// (Grafana 10.3 and later read it as is).
const SchemaVersion = 39

// Tag is on every nerve dashboard; the dashboards link to each other by it.
const Tag = "nerve"

// Dashboard is one Grafana dashboard: variables, annotations and rows of
// panels, laid out top to bottom and left to right on Grafana's 24-column
// grid.
type Dashboard struct {
	File        string // the JSON file, in this directory
	UID, Title  string
	Description string
	Vars        []Var // after the data source variable, which every dashboard has
	Annotations []Annotation
	Rows        []Row
}

// Var is a query variable whose values are label_values(...) of a real
// series. Every one is multi-valued with an "All" option; All is the list
// of values, never a catch-all regex, so that it cannot match series of
// other jobs. Panels use it as label=~"$name".
type Var struct {
	Name, Label, Description string
	Query                    string // label_values(<selector>, <label>)
}

// Annotation marks events on every time series panel: a Prometheus query
// whose samples become annotations (consecutive samples merge into a
// region).
type Annotation struct {
	Name, Expr  string
	Title, Text string // legend formats, e.g. "{{action}}: {{result}}"
	Tags        string // comma-separated label names
	Color       string
	StepSeconds int // 0 = 60
}

// Row is a titled row of panels. With Repeat, Grafana makes one copy of the
// row per selected value of that variable. A row with no title is panels at
// the top without a row header.
type Row struct {
	Title  string
	Repeat string
	Panels []Panel
}

// Kind is a Grafana panel type.
type Kind string

// The panel types nerve's dashboards use.
const (
	TimeSeries    Kind = "timeseries"
	Heatmap       Kind = "heatmap" // targets are cumulative `le` buckets: sum by (le) (rate(..._bucket[...]))
	Stat          Kind = "stat"
	StateTimeline Kind = "state-timeline"
	Table         Kind = "table" // targets are instant queries shown as a table
)

// Panel is one panel. Width and height are in grid units; 0 means 12 x 8.
type Panel struct {
	Kind               Kind
	Title, Description string
	Unit               string // Grafana unit: s, percentunit, reqps, ops, bytes, ns, short, none
	W, H               int
	Targets            []Target
	// Goals are values that matter (the goals' enter thresholds): dashed
	// lines on time series, colour steps on stats.
	Goals []Goal
	// States name values (1 = leader, 1 = diagnosed) with a colour.
	States []State
	Stack  bool // stack the series (time series)
	Bars   bool // draw bars, for counts per interval (time series)
}

// Goal is a threshold drawn on a panel.
type Goal struct {
	Value float64
	Color string
}

// State is a value mapping: Value shown as Text, in Color.
type State struct {
	Value, Text, Color string
}

// Target is one query of a panel.
type Target struct {
	Expr    string
	Legend  string // legend format; "" = Grafana's automatic legend
	Instant bool   // an instant query (tables, current values)
}

// JSON renders the dashboard as Grafana reads it: indented, keys sorted,
// no HTML escaping (PromQL has < and >), with a final newline.
func (d Dashboard) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d.render()); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	return buf.Bytes(), nil
}

type obj = map[string]any

// datasource is every query's data source: the dashboard's variable.
var datasource = obj{"type": "prometheus", "uid": "${datasource}"}

func (d Dashboard) render() obj {
	annotations := []any{obj{
		"builtIn":    1,
		"datasource": obj{"type": "grafana", "uid": "-- Grafana --"},
		"enable":     true,
		"hide":       true,
		"iconColor":  "rgba(0, 211, 255, 1)",
		"name":       "Annotations & Alerts",
		"type":       "dashboard",
	}}
	for _, a := range d.Annotations {
		step := a.StepSeconds
		if step == 0 {
			step = 60
		}
		annotations = append(annotations, obj{
			"datasource":      datasource,
			"enable":          true,
			"expr":            a.Expr,
			"iconColor":       a.Color,
			"name":            a.Name,
			"step":            fmt.Sprintf("%ds", step),
			"tagKeys":         a.Tags,
			"textFormat":      a.Text,
			"titleFormat":     a.Title,
			"useValueForTime": false,
		})
	}

	vars := []any{obj{
		"current":     obj{},
		"hide":        0,
		"includeAll":  false,
		"label":       "Data source",
		"multi":       false,
		"name":        "datasource",
		"options":     []any{},
		"query":       "prometheus",
		"refresh":     1,
		"regex":       "",
		"skipUrlSync": false,
		"type":        "datasource",
	}}
	for _, v := range d.Vars {
		vars = append(vars, obj{
			"current":     obj{},
			"datasource":  datasource,
			"definition":  v.Query,
			"description": v.Description,
			"hide":        0,
			"includeAll":  true,
			"label":       v.Label,
			"multi":       true,
			"name":        v.Name,
			"options":     []any{},
			"query":       v.Query,
			"refresh":     2, // on time range change: devices and JVMs come and go
			"regex":       "",
			"skipUrlSync": false,
			"sort":        1,
			"type":        "query",
		})
	}

	return obj{
		"annotations":          obj{"list": annotations},
		"description":          d.Description,
		"editable":             true,
		"fiscalYearStartMonth": 0,
		"graphTooltip":         1, // shared crosshair
		"id":                   nil,
		"links": []any{obj{
			"asDropdown":  false,
			"icon":        "external link",
			"includeVars": true,
			"keepTime":    true,
			"tags":        []any{Tag},
			"targetBlank": false,
			"title":       "nerve",
			"tooltip":     "",
			"type":        "dashboards",
			"url":         "",
		}},
		"panels":        d.layout(),
		"refresh":       "30s",
		"schemaVersion": SchemaVersion,
		"tags":          []any{Tag},
		"templating":    obj{"list": vars},
		"time":          obj{"from": "now-3h", "to": "now"},
		"timepicker":    obj{},
		"timezone":      "",
		"title":         d.Title,
		"uid":           d.UID,
		"version":       1,
		"weekStart":     "",
	}
}

// layout places rows and panels on the grid and numbers them.
func (d Dashboard) layout() []any {
	var out []any
	id, y := 0, 0
	for _, r := range d.Rows {
		if r.Title != "" {
			id++
			row := obj{
				"collapsed": false,
				"gridPos":   obj{"h": 1, "w": 24, "x": 0, "y": y},
				"id":        id,
				"panels":    []any{},
				"title":     r.Title,
				"type":      "row",
			}
			if r.Repeat != "" {
				row["repeat"] = r.Repeat
			}
			out = append(out, row)
			y++
		}
		x, lineH := 0, 0
		for _, p := range r.Panels {
			w, h := p.W, p.H
			if w == 0 {
				w = 12
			}
			if h == 0 {
				h = 8
			}
			if x+w > 24 {
				x, y, lineH = 0, y+lineH, 0
			}
			id++
			out = append(out, p.render(id, obj{"h": h, "w": w, "x": x, "y": y}))
			x += w
			lineH = max(lineH, h)
		}
		y += lineH
	}
	return out
}

func (p Panel) render(id int, pos obj) obj {
	steps := []any{obj{"color": "green", "value": nil}}
	for _, g := range p.Goals {
		steps = append(steps, obj{"color": g.Color, "value": g.Value})
	}
	defaults := obj{
		"color":      obj{"mode": "palette-classic"},
		"mappings":   []any{},
		"thresholds": obj{"mode": "absolute", "steps": steps},
		"unit":       p.Unit,
	}
	if len(p.States) > 0 {
		opts := obj{}
		for i, s := range p.States {
			opts[s.Value] = obj{"color": s.Color, "index": i, "text": s.Text}
		}
		defaults["mappings"] = []any{obj{"options": opts, "type": "value"}}
		defaults["color"] = obj{"mode": "thresholds"}
	}

	format := "time_series"
	var options obj
	switch p.Kind {
	case TimeSeries:
		draw, fill := "line", 10
		if p.Bars {
			draw, fill = "bars", 80
		}
		stacking := "none"
		if p.Stack {
			stacking = "normal"
		}
		thresholds := "off"
		if len(p.Goals) > 0 {
			thresholds = "dashed"
		}
		defaults["min"] = 0
		defaults["custom"] = obj{
			"axisSoftMin":     0,
			"drawStyle":       draw,
			"fillOpacity":     fill,
			"gradientMode":    "none",
			"lineWidth":       1,
			"showPoints":      "never",
			"spanNulls":       false,
			"stacking":        obj{"group": "A", "mode": stacking},
			"thresholdsStyle": obj{"mode": thresholds},
		}
		options = obj{
			"legend":  obj{"calcs": []any{}, "displayMode": "list", "placement": "bottom", "showLegend": true},
			"tooltip": obj{"mode": "multi", "sort": "desc"},
		}
	case Heatmap:
		format = "heatmap"
		defaults = obj{"custom": obj{"scaleDistribution": obj{"type": "linear"}}}
		options = obj{
			"calculate": false,
			"cellGap":   1,
			"color": obj{
				"exponent": 0.5, "fill": "dark-orange", "mode": "scheme", "reverse": false,
				"scale": "exponential", "scheme": "Oranges", "steps": 64,
			},
			"exemplars":    obj{"color": "rgba(255,0,255,0.7)"},
			"filterValues": obj{"le": 1e-9},
			"legend":       obj{"show": true},
			"rowsFrame":    obj{"layout": "auto"},
			"tooltip":      obj{"mode": "single", "showColorScale": false, "yHistogram": true},
			"yAxis":        obj{"axisPlacement": "left", "reverse": false, "unit": p.Unit},
		}
	case Stat:
		options = obj{
			"colorMode":     "value",
			"graphMode":     "area",
			"justifyMode":   "auto",
			"orientation":   "auto",
			"reduceOptions": obj{"calcs": []any{"lastNotNull"}, "fields": "", "values": false},
			"textMode":      "auto",
		}
		if len(p.Goals) > 0 || len(p.States) > 0 {
			defaults["color"] = obj{"mode": "thresholds"}
		}
	case StateTimeline:
		defaults["custom"] = obj{"fillOpacity": 80, "lineWidth": 0}
		options = obj{
			"alignValue":  "left",
			"legend":      obj{"displayMode": "list", "placement": "bottom", "showLegend": false},
			"mergeValues": true,
			"rowHeight":   0.9,
			"showValue":   "never",
			"tooltip":     obj{"mode": "single", "sort": "none"},
		}
	case Table:
		format = "table"
		options = obj{"cellHeight": "sm", "showHeader": true}
	}

	targets := make([]any, len(p.Targets))
	for i, t := range p.Targets {
		legend := t.Legend
		if legend == "" {
			legend = "__auto"
		}
		if p.Kind == Heatmap {
			legend = "{{le}}"
		}
		instant := t.Instant || p.Kind == Table
		targets[i] = obj{
			"datasource":   datasource,
			"editorMode":   "code",
			"expr":         t.Expr,
			"format":       format,
			"instant":      instant,
			"legendFormat": legend,
			"range":        !instant,
			"refId":        string(rune('A' + i)),
		}
	}

	out := obj{
		"datasource":  datasource,
		"description": p.Description,
		"fieldConfig": obj{"defaults": defaults, "overrides": []any{}},
		"gridPos":     pos,
		"id":          id,
		"options":     options,
		"targets":     targets,
		"title":       p.Title,
		"type":        string(p.Kind),
	}
	if p.Kind == Table {
		out["transformations"] = []any{obj{"id": "organize", "options": obj{"excludeByName": obj{"Time": true}}}}
	}
	return out
}

// All is every nerve dashboard, in the order the README lists them.
func All() []Dashboard {
	return []Dashboard{nodeHealth(), decisions(), manager(), self()}
}
