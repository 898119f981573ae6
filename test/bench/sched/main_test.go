package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stripPrefix drops the "stress-ng: metrc: [pid] " prefix of every line, as
// stress-ng --log-brief prints them.
func stripPrefix(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if _, rest, ok := strings.Cut(l, "] "); ok {
			lines[i] = rest
		}
	}
	return strings.Join(lines, "\n")
}

func TestParseStressNG(t *testing.T) {
	// stress-ng 0.15.06 --switch 2 --timeout 1s --metrics-brief, stderr.
	real := readFixture(t, "stress-ng-switch.txt")
	// The figure one column right of its heading's end, then one left.
	pastHeading := strings.Replace(real, "121357.28 ", " 121357.28", 1)
	shortOfHeading := strings.Replace(real, " 121357.28", "121357.28 ", 1)
	tests := []struct {
		name     string
		out      string
		stressor string
		want     float64
		wantErr  string
	}{
		{name: "stress-ng 0.15", out: real, stressor: "switch", want: 121357.28},
		// Releases before 0.15 log the table at "info:", the same width.
		{name: "info prefix", out: strings.ReplaceAll(real, "metrc:", "info: "), stressor: "switch", want: 121357.28},
		{name: "no prefix", out: stripPrefix(real), stressor: "switch", want: 121357.28},
		{name: "CRLF", out: strings.ReplaceAll(real, "\n", "\r\n"), stressor: "switch", want: 121357.28},
		{name: "other stressor", out: real, stressor: "cpu", wantErr: `no "cpu" row`},
		{name: "no table", out: "stress-ng: info:  [1] dispatching hogs: 2 switch\n", stressor: "switch", wantErr: "no metrics table"},
		{name: "empty", out: "", stressor: "switch", wantErr: "no metrics table"},
		{name: "figure past its heading", out: pastHeading, stressor: "switch", wantErr: "no figure under (real time)"},
		{name: "figure short of its heading", out: shortOfHeading, stressor: "switch", wantErr: "is not a rate"},
		{name: "not a number", out: strings.Replace(real, "121357.28", "      n/a", 1), stressor: "switch", wantErr: "is not a rate"},
		{name: "negative", out: strings.Replace(real, "121357.28", "-121357.2", 1), stressor: "switch", wantErr: "is not a rate"},
		{name: "row cut short", out: strings.Replace(real, "    121357.28       75468.84", "", 1), stressor: "switch", wantErr: "no figure under (real time)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStressNG(tt.out, tt.stressor)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStressNG() = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseStressNG() = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParseStressNG checks that no output makes the parser panic or return
// something that is not a rate, and that it reads columns relative to the
// line prefix, whatever that is.
func FuzzParseStressNG(f *testing.F) {
	real := readFixture(f, "stress-ng-switch.txt")
	f.Add(real, "switch")
	f.Add(stripPrefix(real), "switch")
	f.Add(strings.ReplaceAll(real, "metrc:", "info: "), "switch")
	f.Add("stressor bogo ops/s\n(real time)\nswitch 1\n", "switch")
	f.Add("x stressor bogo ops/s\n  (real time)\n  s  5\n", "s")
	f.Fuzz(func(t *testing.T, out, stressor string) {
		v, err := parseStressNG(out, stressor)
		if err == nil && (v < 0 || math.IsInf(v, 0) || math.IsNaN(v)) {
			t.Fatalf("parseStressNG() = %v, want a finite rate >= 0", v)
		}
		lines := strings.Split(out, "\n")
		for i := range lines {
			lines[i] = "p " + lines[i]
		}
		v2, err2 := parseStressNG(strings.Join(lines, "\n"), stressor)
		if (err == nil) != (err2 == nil) || v != v2 {
			t.Fatalf("with a prefix on every line: %v, %v; without: %v, %v", v2, err2, v, err)
		}
	})
}

func TestParsePerfPipe(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    float64
		wantErr bool
	}{
		// perf 6.1 bench sched pipe -l 10000.
		{name: "perf 6.1", out: readFixture(t, "perf-sched-pipe.txt"), want: 21.5838},
		{name: "no figure", out: "# Running 'sched/pipe' benchmark:\n", wantErr: true},
		{name: "zero", out: "      0.000000 usecs/op\n", wantErr: true},
		{name: "garbled", out: "      abc usecs/op\n", wantErr: true},
		// Output like that of Debian's /usr/bin/perf wrapper when no perf build matches the kernel.
		{name: "wrapper", out: "WARNING: perf not found for kernel 6.18.44\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePerfPipe(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePerfPipe() = %v, %v; want error %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parsePerfPipe() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCtxt(t *testing.T) {
	stat := "cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr 123 0 1\nctxt 98765432\nbtime 1700000000\n"
	got, err := parseCtxt([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(98765432); got != want {
		t.Errorf("parseCtxt() = %d, want %d", got, want)
	}
	if _, err := parseCtxt([]byte("cpu 1 2 3\n")); err == nil {
		t.Error("parseCtxt() without a ctxt line: no error")
	}
}
