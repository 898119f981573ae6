package fio

import (
	"os"
	"strings"
	"testing"
)

func TestParseReal(t *testing.T) {
	b, err := os.ReadFile("testdata/randread.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	reads, writes := r.TotalIOs()
	if reads != 100 || writes != 0 {
		t.Errorf("TotalIOs = %d, %d, want 100, 0", reads, writes)
	}
	if r.IOPS() <= 0 {
		t.Errorf("IOPS = %g, want > 0", r.IOPS())
	}
	if p50, ok := r.Jobs[0].Read.Clat.Percentile(50); !ok || p50 <= 0 {
		t.Errorf("clat p50 = %g, %v", p50, ok)
	}
	if _, ok := r.Jobs[0].Read.Clat.Percentile(12.5); ok {
		t.Error("found a percentile fio did not report")
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "no JSON object"},
		{"fio: warning\n{", "fio report"},
		{`{"jobs": []}`, "no jobs"},
		{`{"jobs": [{"jobname": "x", "error": 5}]}`, `job "x" failed with error 5`},
		{`{"jobs": "nope"}`, "fio report"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/randread.json")
	f.Add(b)
	f.Add([]byte(`{"jobs":[{"read":{"total_ios":1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err == nil && len(r.Jobs) == 0 {
			t.Fatal("accepted a report with no jobs")
		}
	})
}
