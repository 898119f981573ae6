package benchkit

import (
	"slices"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := Median(in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("Median(%v) reordered its argument to %v", tt.in, in)
		}
	}
}

func TestDeltas(t *testing.T) {
	before := map[uint32]ProgStat{
		1: {ID: 1, Name: "b", RunCnt: 10, RunTimeNs: 1000},
		2: {ID: 2, Name: "a", RunCnt: 5, RunTimeNs: 500},
		3: {ID: 3, Name: "other", RunCnt: 1, RunTimeNs: 1},
	}
	after := map[uint32]ProgStat{
		1: {ID: 1, Name: "b", RunCnt: 30, RunTimeNs: 4000},
		2: {ID: 2, Name: "a", RunCnt: 5, RunTimeNs: 500},
		3: {ID: 3, Name: "other", RunCnt: 9, RunTimeNs: 9},
		4: {ID: 4, Name: "new", RunCnt: 7, RunTimeNs: 70},
	}
	// 3 is not the tracer's; 5 was unloaded before the second snapshot.
	got := Deltas(map[uint32]bool{1: true, 2: true, 4: true, 5: true}, before, after)
	want := []ProgDelta{{"a", 0, 0}, {"b", 20, 3000}, {"new", 7, 70}}
	if !slices.Equal(got, want) {
		t.Errorf("Deltas() = %v, want %v", got, want)
	}
	if got, want := TotalNs(got), uint64(3070); got != want {
		t.Errorf("TotalNs() = %d, want %d", got, want)
	}
}

func TestSumByProgram(t *testing.T) {
	runs := [][]ProgDelta{
		{{"x", 1, 10}, {"a", 2, 20}},
		{{"a", 3, 30}, {"a", 1, 1}},
		nil,
	}
	want := []ProgDelta{{"a", 6, 51}, {"x", 1, 10}}
	if got := SumByProgram(runs); !slices.Equal(got, want) {
		t.Errorf("SumByProgram() = %v, want %v", got, want)
	}
}

func TestParseModes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "none,nerve,tool", want: []string{"none", "nerve", "tool"}},
		{in: " nerve , none,nerve,,", want: []string{"nerve", "none"}},
		{in: "", want: nil},
		{in: "none,bogus", wantErr: `unknown mode "bogus" in -tools`},
	}
	for _, tt := range tests {
		got, err := ParseModes(tt.in, "none", "nerve", "tool")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseModes(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseModes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
