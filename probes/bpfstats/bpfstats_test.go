package bpfstats

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nervehq/nerve/internal/privtest"
)

func TestCollectorEmpty(t *testing.T) {
	c := New()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("a Collector with no probes exported %d series, want 0", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// noop loads a socket filter that returns 0, the cheapest program that
// BPF_PROG_TEST_RUN can run on demand.
func noop(t *testing.T) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "nerve_noop",
		Type:         ebpf.SocketFilter,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// runs returns the exported run count of the test program.
func runs(t *testing.T, c *Collector) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nerve_bpf_program_runs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["probe"] == "test" && labels["program"] == "noop" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatal("no nerve_bpf_program_runs_total{probe=\"test\",program=\"noop\"}")
	return 0
}

func TestRunCountRises(t *testing.T) {
	privtest.Root(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	stats, err := Enable()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	prog := noop(t)
	c := New()
	c.Add("test", func() map[string]*ebpf.Program { return map[string]*ebpf.Program{"noop": prog} })

	before := runs(t, c)
	const n = 1000
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64), Repeat: n}); err != nil {
		t.Fatal(err)
	}
	after := runs(t, c)
	if got := after - before; got < n {
		t.Errorf("runs rose by %v over %d test runs, want at least %d", got, n, n)
	}

	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	for _, name := range []string{"nerve_bpf_program_run_seconds_total", "nerve_bpf_program_recursion_misses_total"} {
		if n := testutil.CollectAndCount(c, name); n != 1 {
			t.Errorf("%s: %d series, want 1", name, n)
		}
	}

	c.Remove("test")
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("after Remove: %d series, want 0", n)
	}
}

// A closed program fails its own series, not the scrape of everything else.
func TestClosedProgram(t *testing.T) {
	privtest.Root(t)
	prog := noop(t)
	closed := noop(t)
	closed.Close()
	c := New()
	c.Add("test", func() map[string]*ebpf.Program {
		return map[string]*ebpf.Program{"noop": prog, "closed": closed}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	_, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "probe test program closed: read stats") {
		t.Errorf("Gather error = %v, want one naming the closed program", err)
	}
}
