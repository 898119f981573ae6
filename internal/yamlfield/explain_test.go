package yamlfield

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// doc is a schema with one field of each kind Explain describes.
type doc struct {
	Server  server            `yaml:"server"`
	Limits  limits            `yaml:"limits"`
	Jobs    []job             `yaml:"jobs"`
	ByName  map[string]job    `yaml:"by_name"`
	Labels  map[string]string `yaml:"labels"`
	Verbose bool              `yaml:"verbose"`
	Ratio   float64           // key "ratio": yaml.v3 lowercases untagged names
	Ignored int               `yaml:"-"`
}

type server struct {
	Address string        `yaml:"address"`
	Timeout time.Duration `yaml:"timeout"`
	Port    *int          `yaml:"port"`
}

type limits struct {
	window `yaml:",inline"`
	Max    uint64 `yaml:"max"`
}

type window struct {
	Every time.Duration `yaml:"every"`
	Count int           `yaml:"count"`
}

type job struct {
	Name  string   `yaml:"name"`
	Hosts []string `yaml:"hosts"`
}

// explainDoc decodes src into a doc the way internal/config and
// actuator/goals decode their files, and explains the error.
func explainDoc(t *testing.T, src string) error {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	var d doc
	err := dec.Decode(&d)
	if err == nil {
		t.Fatalf("%q decodes without an error", src)
	}
	return Explain([]byte(src), err, reflect.TypeFor[doc]())
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole message
	}{
		{"unknown top-level field", "server: {}\nmetrics: {}\n",
			"line 2: metrics: unknown field (known here: server, limits, jobs, by_name, labels, verbose, ratio)"},
		{"unknown nested field", "server:\n  adress: x\n",
			"line 2: server.adress: unknown field (known here: address, timeout, port)"},
		{"inline fields are known in their parent", "limits: {evry: 1s}\n",
			"line 1: limits.evry: unknown field (known here: every, count, max)"},
		{"unknown field in a list element", "jobs:\n  - name: a\n  - nme: b\n",
			"line 3: jobs[1].nme: unknown field (known here: name, hosts)"},
		{"unknown field in a map value", "by_name:\n  a:\n    host: x\n",
			"line 3: by_name.a.host: unknown field (known here: name, hosts)"},
		{"set twice", "server:\n  address: a\n  address: b\n",
			"line 3: server.address: set twice (first at line 2)"},
		{"integer", "limits: {count: lots}\n", `line 1: limits.count: must be an integer, got "lots"`},
		{"non-negative integer", "limits: {max: -1}\n", `line 1: limits.max: must be a non-negative integer, got "-1"`},
		{"number", "ratio: half\n", `line 1: ratio: must be a number, got "half"`},
		{"bool", "verbose: maybe\n", `line 1: verbose: must be true or false, got "maybe"`},
		{"duration", "server:\n  timeout: 100\n", `line 2: server.timeout: must be a duration like "50ms" or "0s", got "100"`},
		{"inline duration", "limits: {every: 5}\n", `line 1: limits.every: must be a duration like "50ms" or "0s", got "5"`},
		{"pointer", "server: {port: http}\n", `line 1: server.port: must be an integer, got "http"`},
		{"string", "server: {address: [a]}\n", "line 1: server.address: must be a string, got a list"},
		{"mapping", "server: on\n", `line 1: server: must be a mapping, got "on"`},
		{"map", "labels: [a]\n", "line 1: labels: must be a mapping, got a list"},
		{"list", "jobs: {a: 1}\n", "line 1: jobs: must be a list, got a mapping"},
		{"list of strings", "jobs: [{hosts: a}]\n", `line 1: jobs[0].hosts: must be a list, got "a"`},
		{"root", "- a\n", "line 1: the file must be a mapping of settings, got a list"},
		// yaml.v3 quotes 7 bytes and "..." of a value longer than 10.
		{"long value", "limits: {count: abcdefghijklmnop}\n", `line 1: limits.count: must be an integer, got "abcdefg..."`},
		// Line, value and type cannot tell the keys apart: no path.
		{"ambiguous", "by_name: {a: {name: [x]}, b: {name: [x]}}\n",
			"line 1: must be a string, got a list; line 1: must be a string, got a list"},
		{"types tell values apart", "limits: {count: x, every: x}\n",
			`line 1: limits.count: must be an integer, got "x"; line 1: limits.every: must be a duration like "50ms" or "0s", got "x"`},
		// Line and value fit both keys; the Go type tells them apart.
		{"types tell keys apart", "server: {address: {}}\n", "line 1: server.address: must be a string, got a mapping"},
		{"types tell unknown keys apart", "jobs: [{name: a, jobs: 1}]\n",
			"line 1: jobs[0].jobs: unknown field (known here: name, hosts)"},
		{"every problem", "verbose: 2\nratio: x\nnope: 1\n",
			`line 1: verbose: must be true or false, got "2"; line 2: ratio: must be a number, got "x"; ` +
				"line 3: nope: unknown field (known here: server, limits, jobs, by_name, labels, verbose, ratio)"},
		{"line breaks are escaped", "server: {address: [a]}\nlimits: {count: \"a\nb\"}\n",
			`line 1: server.address: must be a string, got a list; line 2: limits.count: must be an integer, got "a b"`},
		{"syntax", "server:\n  address: a\n port: 1\n", "line 2: invalid YAML: did not find expected key"},
		{"syntax without a line", "server: \x01\n", "invalid YAML: control characters are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := explainDoc(t, tt.src)
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Errorf("%v is no Errors", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("errors.As finds no *FieldError in %v", err)
			}
		})
	}
}

func TestExplainNil(t *testing.T) {
	if err := Explain([]byte("a: 1"), nil, reflect.TypeFor[doc]()); err != nil {
		t.Errorf("Explain(nil error) = %v, want nil", err)
	}
}

// Without a schema Explain still names the path; it cannot list known fields
// or say what a type of the document's own means.
func TestExplainNoSchema(t *testing.T) {
	var d doc
	dec := yaml.NewDecoder(strings.NewReader("server: {adress: x, timeout: 100}\n"))
	dec.KnownFields(true)
	err := Explain(nil, dec.Decode(&d), nil)
	want := `line 1: unknown field; line 1: must be a duration like "50ms" or "0s", got "100"`
	if got := err.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestErrors(t *testing.T) {
	errs := Errors{
		{Line: 3, Path: "a.b", Msg: "unknown field"},
		{Path: "c", Msg: "must be positive, got 0"},
		{Line: 7, Msg: "invalid YAML: x"},
		{Msg: "bare"},
	}
	want := "line 3: a.b: unknown field; c: must be positive, got 0; line 7: invalid YAML: x; bare"
	if got := errs.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var fe *FieldError
	if !errors.As(error(errs), &fe) || fe != errs[0] {
		t.Errorf("errors.As found %v, want the first FieldError", fe)
	}
}

func TestName(t *testing.T) {
	type s struct {
		Tagged   int `yaml:"tagged_name,omitempty"`
		Untagged int
		Skipped  int `yaml:"-"`
		Inlined  job `yaml:",inline"`
		unexp    int
	}
	var got []string
	for f := range reflect.TypeFor[s]().Fields() {
		got = append(got, Name(f))
	}
	want := []string{"tagged_name", "untagged", "", "", ""}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	_ = s{}.unexp
}

func TestPaths(t *testing.T) {
	got := Paths([]byte("a: 1\nb:\n  c: [x, {d: 2}]\n  e: {f: 3}\n"))
	want := []string{"a", "b", "b.c", "b.c[1].d", "b.e", "b.e.f"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := Paths([]byte("a: [")); got != nil {
		t.Errorf("Paths of bad YAML = %q, want nil", got)
	}
}

func FuzzExplain(f *testing.F) {
	for _, s := range []string{
		"server: {address: a, timeout: 1s, port: 1}\nlimits: {every: 1s, count: 2, max: 3}\n",
		"jobs: [{name: a, hosts: [b]}]\nby_name: {x: {name: y}}\nlabels: {k: v}\n",
		"server:\n  adress: x\n  timeout: 100\n",
		"limits: {count: x, every: x}\n",
		"a: &x [*x]\n",
		"<<: {server: {address: a}}\n",
		"- a\n",
		"server: \"a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		var d doc
		err := Explain(data, dec.Decode(&d), reflect.TypeFor[doc]())
		if err == nil {
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("%v is no Errors", err)
		}
		if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error spans lines: %q", err)
		}
		paths := Paths(data)
		for _, e := range errs {
			if e.Path != "" && !slices.Contains(paths, e.Path) {
				t.Errorf("%q names %q, which is no key of the document (keys: %q)", e, e.Path, paths)
			}
		}
	})
}
