package goals

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	g := Default()
	if err := g.Validate(); err != nil {
		t.Fatalf("default.yaml does not validate: %v", err)
	}
	if got, want := g.Disk.ServiceIdleP99.Enter, 50*time.Millisecond; got != want {
		t.Errorf("disk.service_idle_p99.enter = %v, want %v", got, want)
	}
	if got, want := g.Disk.ServiceIdleP99.MinRequests, uint64(20); got != want {
		t.Errorf("disk.service_idle_p99.min_requests = %v, want %v", got, want)
	}
	if got, want := g.Canary.Failures, 3; got != want {
		t.Errorf("canary.failures = %v, want %v", got, want)
	}
	// No setting may be left to Go's zero value: default.yaml is where an
	// operator reads what each one is.
	for _, r := range []Rule[time.Duration]{g.Disk.ServiceIdleP99.Rule, g.Disk.QueueP99, g.CPU.RunQueueP99, g.Memory.PageFaultStallP99} {
		if r.Enter == 0 || r.Exit == 0 || r.For == 0 || r.ClearFor == 0 {
			t.Errorf("default.yaml leaves a setting out: %+v", r)
		}
	}
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want func(*Goals) // edits the defaults into what the document says
	}{
		{"empty", "", func(*Goals) {}},
		{"comments only", "# nothing\n", func(*Goals) {}},
		{"null section", "disk:\ncpu: null\n", func(*Goals) {}},
		{"one field", "disk:\n  queue_p99:\n    enter: 200ms\n", func(g *Goals) { g.Disk.QueueP99.Enter = 200 * time.Millisecond }},
		{"flow style", "jvm: {stopped_fraction: {enter: 1, exit: 0.9, for: 0s}}\n", func(g *Goals) {
			g.JVM.StoppedFraction.Enter, g.JVM.StoppedFraction.Exit, g.JVM.StoppedFraction.For = 1, 0.9, 0
		}},
		{"inline field", "disk: {service_idle_p99: {min_requests: 0, clear_for: 5m}}\n", func(g *Goals) {
			g.Disk.ServiceIdleP99.MinRequests, g.Disk.ServiceIdleP99.ClearFor = 0, 5*time.Minute
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(&want)
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each must appear in the error
	}{
		{"exit above enter", "disk:\n  service_idle_p99: {enter: 50ms, exit: 80ms}\n",
			[]string{"goals: disk.service_idle_p99.exit: must be below enter (50ms), got 80ms"}},
		{"exit equal to enter", "cpu: {runqueue_p99: {enter: 5ms, exit: 5ms}}\n",
			[]string{"cpu.runqueue_p99.exit: must be below enter (5ms), got 5ms"}},
		{"enter below default exit", "memory: {pagefault_stall_p99: {enter: 5ms}}\n",
			[]string{"memory.pagefault_stall_p99.exit: must be below enter (5ms), got 10ms"}},
		{"negative enter", "disk: {queue_p99: {enter: -1ms}}\n",
			[]string{"disk.queue_p99.enter: must be positive, got -1ms"}},
		{"zero exit", "disk: {queue_p99: {exit: 0s}}\n",
			[]string{"disk.queue_p99.exit: must be positive, got 0s"}},
		{"negative durations", "cpu: {runqueue_p99: {for: -1s, clear_for: -2s}}\n",
			[]string{"cpu.runqueue_p99.for: must not be negative, got -1s", "cpu.runqueue_p99.clear_for: must not be negative, got -2s"}},
		{"fraction above 1", "jvm: {stopped_fraction: {enter: 1.5}}\n",
			[]string{"jvm.stopped_fraction.enter: must be above 0 and at most 1, got 1.5"}},
		{"fraction NaN", "jvm: {stopped_fraction: {exit: .nan}}\n",
			[]string{"jvm.stopped_fraction.exit: must be positive, got NaN"}},
		{"canary", "canary: {timeout: 0s, failures: 0}\n",
			[]string{"canary.timeout: must be positive, got 0s", "canary.failures: must be at least 1, got 0"}},
		{"unknown field", "disk:\n  service_idle_p99:\n    entre: 10ms\n",
			[]string{"goals: line 3: disk.service_idle_p99.entre: unknown field"}},
		{"unknown section", "network: {}\n", []string{"line 1: network: unknown field"}},
		{"duration without unit", "disk:\n  queue_p99:\n    enter: 100\n",
			[]string{`line 3: disk.queue_p99.enter: must be a duration like "50ms" or "0s", got "100"`}},
		{"not a number", "jvm:\n  stopped_fraction: {enter: half}\n",
			[]string{`line 2: jvm.stopped_fraction.enter: must be a number, got "half"`}},
		{"negative count", "disk: {service_idle_p99: {min_requests: -1}}\n",
			[]string{`disk.service_idle_p99.min_requests: must be a non-negative integer, got "-1"`}},
		{"list for a section", "canary: [1, 2]\n", []string{"line 1: canary: must be a mapping, got a list"}},
		{"syntax", "disk: {queue_p99: \n", []string{"invalid YAML"}},
		{"two documents", "disk: {}\n---\ncpu: {}\n", []string{"line 2: more than one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("errors.As finds no *FieldError in %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("canary: {failures: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("canary: {failures: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if g.Canary.Failures != 5 {
		t.Errorf("canary.failures = %d, want 5", g.Canary.Failures)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad+": canary.failures") {
		t.Errorf("Load(bad) = %v, want an error naming the file and the field", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestLevels(t *testing.T) {
	enter, exit := Default().Disk.QueueP99.Levels()
	if enter != 0.1 || exit != 0.05 {
		t.Errorf("Levels() = %v, %v, want 0.1, 0.05 (seconds)", enter, exit)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	f.Add([]byte("disk: {service_idle_p99: {enter: 50ms, exit: 80ms}}\n"))
	f.Add([]byte("jvm: {stopped_fraction: {enter: .nan}}\n"))
	f.Add([]byte("canary: [1]\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			if g != (Goals{}) {
				t.Errorf("Parse failed (%v) but returned goals %+v", err, g)
			}
			return
		}
		// Whatever parses must be goals the engine can run on.
		if err := g.Validate(); err != nil {
			t.Errorf("Parse accepted goals that do not validate: %v", err)
		}
	})
}
