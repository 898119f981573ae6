package runqueue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/targets"
)

func newTestProbe(t *testing.T, ts ...targets.Target) *Probe {
	t.Helper()
	return newTestProbeConfig(t, Config{Targets: ts, Refresh: 200 * time.Millisecond})
}

func newTestProbeConfig(t *testing.T, cfg Config) *Probe {
	t.Helper()
	privtest.Root(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if !p.Attached() {
		privtest.Skip(t, fmt.Sprintf("run-queue BPF programs cannot run here: %v", p.bpfErr))
	}
	return p
}

func read(t *testing.T, p *Probe) *Delays {
	t.Helper()
	d, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func delta(a, b histogram.Hist) histogram.Hist {
	for i := range a.Counts {
		a.Counts[i] -= b.Counts[i]
	}
	a.SumNs -= b.SumNs
	return a
}

// runqlatMedian parses libbpf-tools runqlat output (log2 buckets in usecs) and
// estimates the median in ns the same way histogram_quantile would.
func runqlatMedian(out string) (float64, uint64, error) {
	re := regexp.MustCompile(`^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)`)
	type b struct{ lo, hi, n float64 }
	var bs []b
	var total float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		lo, _ := strconv.ParseFloat(m[1], 64)
		hi, _ := strconv.ParseFloat(m[2], 64)
		n, _ := strconv.ParseFloat(m[3], 64)
		bs = append(bs, b{lo, hi + 1, n})
		total += n
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no runqlat buckets in %q", out)
	}
	rank, seen := total/2, 0.0
	for _, x := range bs {
		if seen+x.n >= rank {
			return 1e3 * (x.lo + (x.hi-x.lo)*(rank-seen)/x.n), uint64(total), nil
		}
		seen += x.n
	}
	return 0, 0, fmt.Errorf("median not found")
}

// CPU contention inside a target shows as milliseconds of run-queue delay for
// that target, and the node-wide figure agrees with runqlat's.
func TestCPUContention(t *testing.T) {
	privtest.Tools(t, "stress-ng", "runqlat")
	rel, dir := privtest.Cgroup(t)
	p := newTestProbe(t, targets.Target{Name: "hogs", Cgroup: rel})

	idle := read(t, p)
	time.Sleep(2 * time.Second)
	idleDelta := delta(read(t, p).Node, idle.Node)

	workers := 2 * runtime.NumCPU()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	startHogs(t, ctx, dir, workers, 8*time.Second)
	time.Sleep(1500 * time.Millisecond) // workers started, target resolved

	// Both tools measure the same interval: ours starts when runqlat says
	// it is tracing and ends when it exits.
	rq := exec.CommandContext(ctx, "stdbuf", "-oL", "runqlat", "4", "1") // line-buffered, so "Tracing" comes at attach
	rqOut, err := rq.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rq.Stderr = rq.Stdout
	if err := rq.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(rqOut)
	first, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "Tracing") {
		t.Fatalf("runqlat did not start: %q %v", first, err)
	}
	before := read(t, p)
	rest, _ := io.ReadAll(br)
	if err := rq.Wait(); err != nil {
		t.Fatalf("runqlat: %v\n%s%s", err, first, rest)
	}
	out := []byte(first + string(rest))
	after := read(t, p)
	hogs, ok := after.Targets["hogs"]
	if !ok {
		t.Fatal("target hogs has no series while stress-ng runs in it")
	}
	target := delta(hogs, before.Targets["hogs"])
	node := delta(after.Node, before.Node)

	theirs, n, err := runqlatMedian(string(out))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle node median %.1fus (n=%d); under %d hogs: target median %.2fms p90 %.2fms (n=%d), node median %.1fus (n=%d), runqlat median %.1fus (n=%d)",
		idleDelta.Quantile(0.5)/1e3, idleDelta.Count(), workers, target.Quantile(0.5)/1e6, target.Quantile(0.9)/1e6, target.Count(),
		node.Quantile(0.5)/1e3, node.Count(), theirs/1e3, n)

	// p90, not the median: other work on the node preempts the hogs for
	// microseconds at a time, which adds many short waits.
	if m := target.Quantile(0.9); !(m >= 1e6) {
		t.Errorf("target p90 %.3fms under 2x CPU oversubscription, want milliseconds", m/1e6)
	}
	if m := idleDelta.Quantile(0.5); !(m < 1e6) {
		t.Errorf("idle node median %.3fms, want microseconds", m/1e6)
	}
	ratio := node.Quantile(0.5) / theirs
	if !(ratio >= 0.5 && ratio <= 2) {
		t.Errorf("node median %.1fus vs runqlat %.1fus: ratio %.2f outside [0.5, 2]", node.Quantile(0.5)/1e3, theirs/1e3, ratio)
	}
}

// startHogs runs stress-ng with workers CPU hogs for d in the cgroup v2
// directory dir, and waits for it when the test ends.
func startHogs(t *testing.T, ctx context.Context, dir string, workers int, d time.Duration) {
	t.Helper()
	// Born in the cgroup (clone3): every task of it is stress-ng, none a
	// shell on its way to exec it.
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	stress := exec.CommandContext(ctx, "stress-ng", "--cpu", strconv.Itoa(workers), "--timeout", fmt.Sprintf("%ds", int(d.Seconds())), "--quiet")
	stress.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if err := stress.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stress.Wait() })
}

// Thousands of short-lived tasks never produce a bogus huge delay: their
// state dies with them.
func TestExitedTasksLeaveNothing(t *testing.T) {
	p := newTestProbe(t)
	before := read(t, p)
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// 2000 processes that wake, run and exit; pids get reused.
		out, err := exec.CommandContext(ctx, "sh", "-c", "i=0; while [ $i -lt 2000 ]; do /bin/true & i=$((i+1)); done; wait").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("churn: %v\n%s", err, out)
		}
	}
	time.Sleep(500 * time.Millisecond)
	d := delta(read(t, p).Node, before.Node)
	tenSeconds := histogram.Bucket(10e9)
	for i := tenSeconds + 1; i < histogram.Buckets; i++ {
		if d.Counts[i] != 0 {
			t.Errorf("%d delays above 10s (bucket %d, > %.0fs) after process churn", d.Counts[i], i, histogram.LowerNs(i)/1e9)
		}
	}
	if max := maxBucket(d); max >= 0 {
		t.Logf("%d delays during churn, the longest under %.3fs", d.Count(), histogram.UpperNs(max)/1e9)
	}
	if d.Count() < 4000 {
		t.Errorf("only %d delays seen for 4000 new processes", d.Count())
	}
}

func maxBucket(h histogram.Hist) int {
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] > 0 {
			return i
		}
	}
	return -1
}

func TestRunqlatMedian(t *testing.T) {
	out := `
     usecs               : count    distribution
         0 -> 1          : 10       |****|
         2 -> 3          : 10       |****|
         4 -> 7          : 20       |********|
`
	m, n, err := runqlatMedian(out)
	if err != nil || n != 40 {
		t.Fatalf("runqlatMedian: %v, n=%d", err, n)
	}
	if math.Abs(m-4000) > 1 {
		t.Errorf("median = %g ns, want 4000", m)
	}
	if _, _, err := runqlatMedian("nothing"); err == nil {
		t.Error("no error for output without buckets")
	}
}
