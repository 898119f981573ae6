package yamlfield

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	type doc struct {
		A int           `yaml:"a"`
		B string        `yaml:"b"`
		D time.Duration `yaml:"d"`
		F float64       `yaml:"f"`
	}
	tests := []struct {
		name    string
		in      string
		want    doc
		wantErr string
	}{
		{"empty keeps what was there", "", doc{A: 1, B: "x"}, ""},
		{"only comments", "# nothing\n", doc{A: 1, B: "x"}, ""},
		{"named fields only", "a: 2\n", doc{A: 2, B: "x"}, ""},
		{"unknown field", "a: 2\nc: 3\n", doc{}, `line 2: c: unknown field`},
		{"a fraction for an integer", "a: 1.5\n", doc{}, "line 1: a: want a whole number, got 1.5"},
		{"a fraction for a duration", "b: y\nd: 2.5\n", doc{}, "line 2: d: want a duration like 30s, got 2.5"},
		{"a fraction for a float", "f: 2.5\nd: 3s\n", doc{A: 1, B: "x", D: 3 * time.Second, F: 2.5}, ""},
		{"second document", "a: 2\n---\nb: y\n", doc{}, "line 2: more than one YAML document; a test file holds one"},
	}
	for _, tt := range tests {
		got := doc{A: 1, B: "x"}
		err := Decode([]byte(tt.in), &got, "test file")
		if tt.wantErr != "" {
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("%s: Decode() = %v, want an error starting %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Decode() = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}
