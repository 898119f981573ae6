package benchkit

import (
	"bytes"
	"context"
	"errors"
	"log"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestNerveConfig(t *testing.T) {
	got := string(NerveConfig("127.0.0.1:1", "runqueue", "pagefault"))
	want := `web:
  listen_address: "127.0.0.1:1"
probes:
  blockio: {enabled: false}
  runqueue: {enabled: true}
  pagefault: {enabled: true}
  jvm: {enabled: false}
`
	if got != want {
		t.Errorf("NerveConfig() = %q, want %q", got, want)
	}
}

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c"}
	tests := []struct {
		n    int
		want []string
	}{
		{0, []string{"a", "b", "c"}},
		{1, []string{"b", "c", "a"}},
		{5, []string{"c", "a", "b"}},
	}
	for _, tt := range tests {
		if got := Rotate(s, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("Rotate(%v, %d) = %v, want %v", s, tt.n, got, tt.want)
		}
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		all    []float64
		median float64
		want   string
	}{
		{[]float64{10}, 10, "-"},
		{[]float64{9, 10, 11}, 10, "20"},
		{[]float64{0, 0}, 0, "-"},
	}
	for _, tt := range tests {
		if got := Spread(tt.all, tt.median); got != tt.want {
			t.Errorf("Spread(%v, %v) = %q, want %q", tt.all, tt.median, got, tt.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 10, "(no output)"},
		{"a\n  b\tc\n", 10, "a b c"},
		{"first line\nwhy it failed", 8, "...t failed"},
	}
	for _, tt := range tests {
		if got := OneLine(tt.in, tt.n); got != tt.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestProgramRows(t *testing.T) {
	var b strings.Builder
	runs := [][]ProgDelta{{{"b", 4, 400}, {"a", 0, 0}}, {{"b", 2, 200}}}
	ProgramRows(&b, "nerve\t", runs, 0)
	want := "nerve\ta\t0\t0.00\t-\t\nnerve\tb\t6\t6.00\t100\t\n"
	if got := b.String(); got != want {
		t.Errorf("ProgramRows() wrote %q, want %q", got, want)
	}
}

func TestRounds(t *testing.T) {
	var logged bytes.Buffer
	captureLog(t, &logged)

	var ran []string
	rs := Rounds[string, int]{
		Count: 2,
		Order: func(r int) []string { return Rotate([]string{"x", "y", "z"}, r) },
		Run: func(r int, k string) (int, error) {
			ran = append(ran, k)
			if k == "y" {
				return 0, errors.New("broken")
			}
			return r, nil
		},
		Done: func(k string, r int) string { return k + " ok" },
	}
	results, failed, err := rs.Do(context.Background())
	if err != nil {
		t.Fatalf("Do() error = %v", err)
	}
	if want := []string{"x", "y", "z", "z", "x"}; !slices.Equal(ran, want) {
		t.Errorf("Do() ran %v, want %v", ran, want)
	}
	if want := map[string][]int{"x": {0, 1}, "z": {0, 1}}; !maps.EqualFunc(results, want, slices.Equal) {
		t.Errorf("Do() results = %v, want %v", results, want)
	}
	if !rs.LogFailed(failed, func(k string) string { return "case " + k }) {
		t.Error("LogFailed() = false, want true")
	}
	want := "round 1/2 x ok\nround 1/2 y: broken\nround 1/2 z ok\nround 2/2 z ok\nround 2/2 x ok\ncase y could not run: broken\n"
	if got := logged.String(); got != want {
		t.Errorf("logged %q, want %q", got, want)
	}
}

func TestRoundsInterrupted(t *testing.T) {
	captureLog(t, &bytes.Buffer{})
	ctx, cancel := context.WithCancel(context.Background())
	rs := Rounds[string, int]{
		Count: 3,
		Order: func(int) []string { return []string{"x"} },
		Run: func(int, string) (int, error) {
			cancel()
			return 0, nil
		},
		Done: func(string, int) string { return "" },
	}
	if _, _, err := rs.Do(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Do() error = %v, want %v", err, context.Canceled)
	}
}

// captureLog sends the standard logger's lines, without time stamps, to w
// until the test ends.
func captureLog(t *testing.T, w *bytes.Buffer) {
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(w)
	log.SetFlags(0)
	log.SetPrefix("")
	t.Cleanup(func() {
		log.SetOutput(out)
		log.SetFlags(flags)
		log.SetPrefix(prefix)
	})
}
