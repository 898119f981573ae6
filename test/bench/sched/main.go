// Command sched measures what tracing the scheduler costs. It runs
// switch-heavy loads (stress-ng's switch stressor, and perf bench sched pipe
// where perf can run it) with no tracer, under the nerve agent (runqueue and
// pagefault probes on, blockio and jvm off) and under libbpf-tools' runqlat,
// interleaved over a few rounds. It prints the median throughput of each load
// and mode next to the BPF run time each tracer's programs spent per context
// switch (kernel.bpf_stats_enabled, read with bpftool; switches from ctxt in
// /proc/stat).
//
// It only prints: no figure is asserted. It exits non-zero when the setup or a
// tool could not run. A perf that cannot run its benchmark (Debian's wrapper
// refuses kernels it has no perf build for) drops that load, and the report
// says so. Run it as root from the repository root:
//
//	go run ./test/bench/sched -duration 20s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nervehq/nerve/test/bench/benchkit"
)

const (
	modeNone    = "none"
	modeNerve   = "nerve"
	modeRunqlat = "runqlat"

	loadSwitch = "stress-ng" // stress-ng --switch
	loadPipe   = "perf"      // perf bench sched pipe
)

type options struct {
	duration  time.Duration
	rounds    int
	modes     []string
	loads     []string
	agent     benchkit.Agent
	runqlat   string
	switchers int // stress-ng --switch
	pipeLoops int // perf bench sched pipe -l; 0 calibrates it to -duration
	verbose   bool
}

// runResult is one run of one load in one mode.
type runResult struct {
	opsPerSec float64
	switches  uint64 // context switches on all CPUs while the load ran (ctxt in /proc/stat)
	elapsed   time.Duration
	progs     []benchkit.ProgDelta
}

// key names one load run in one mode.
type key struct{ load, mode string }

func main() {
	benchkit.Main("bench-sched", run)
}

func run(ctx context.Context) int {
	var o options
	var modes, loads string
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each load run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; every load runs once per mode and round, the modes in a rotating order")
	flag.StringVar(&modes, "tools", "none,runqlat,nerve", "comma-separated modes: none, runqlat, nerve")
	flag.StringVar(&loads, "loads", "stress-ng,perf", "comma-separated loads: stress-ng (--switch), perf (bench sched pipe)")
	o.agent.Flags(flag.CommandLine)
	flag.StringVar(&o.runqlat, "runqlat", "/usr/sbin/runqlat", "libbpf-tools runqlat binary")
	flag.IntVar(&o.switchers, "switch", 2, "stress-ng switch stressors (pairs of processes switching over a pipe)")
	flag.IntVar(&o.pipeLoops, "pipe-loops", 0, "perf bench sched pipe -l; 0 sizes it to about -duration with no tracer")
	flag.BoolVar(&o.verbose, "v", false, "print each tracer's own output")
	flag.Parse()

	var err error
	if o.modes, err = benchkit.ParseModes(modes, modeNone, modeNerve, modeRunqlat); err != nil {
		log.Print(err)
		return 2
	}
	if o.loads, err = parseLoads(loads); err != nil {
		log.Print(err)
		return 2
	}
	if len(o.modes) == 0 || len(o.loads) == 0 || o.rounds < 1 || o.duration < time.Second || o.switchers < 1 || o.pipeLoops < 0 {
		log.Print("need at least one mode, one load, one round, -duration >= 1s, -switch >= 1 and -pipe-loops >= 0")
		return 2
	}

	if err := preflight(ctx, &o); err != nil {
		log.Print(err)
		return 1
	}

	b := &bench{}
	if slices.Contains(o.loads, loadPipe) {
		b.pipeLoops, b.pipeSkipped = checkPipe(ctx, o.duration, o.pipeLoops)
		if ctx.Err() != nil {
			log.Print("interrupted")
			return 130
		}
		// Not a failure: the other load still measures the same programs.
		if b.pipeSkipped != "" {
			log.Printf("perf bench sched pipe skipped: %s", b.pipeSkipped)
			o.loads = slices.DeleteFunc(o.loads, func(l string) bool { return l == loadPipe })
		}
	}
	b.opts = o

	if b.stats, err = benchkit.SaveBPFStats(); err != nil {
		log.Print(err)
		return 1
	}
	defer b.stats.RestoreOrLog()

	if b.work, err = os.MkdirTemp("", "nerve-bench-sched-"); err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(b.work)

	rounds := benchkit.Rounds[key, runResult]{
		Count: o.rounds,
		// Every load in every mode; the modes' order turns each round.
		Order: func(r int) []key {
			var ks []key
			for _, l := range o.loads {
				for _, m := range benchkit.Rotate(o.modes, r) {
					ks = append(ks, key{l, m})
				}
			}
			return ks
		},
		Run:  func(_ int, k key) (runResult, error) { return b.runMode(ctx, k.load, k.mode) },
		Name: func(k key) string { return k.load + " " + k.mode },
		Done: func(k key, res runResult) string {
			return fmt.Sprintf("%-9s %-7s %10.0f ops/s %9.0f switches/s", k.load, k.mode,
				res.opsPerSec, float64(res.switches)/res.elapsed.Seconds())
		},
	}
	results, failed, err := rounds.Do(ctx)
	if err != nil {
		return 130
	}
	b.report(os.Stdout, results)
	if rounds.LogFailed(failed, func(k key) string { return k.load + " under " + k.mode }) {
		return 1
	}
	return 0
}

func parseLoads(list string) ([]string, error) {
	var loads []string
	for _, l := range strings.Split(list, ",") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case l != loadSwitch && l != loadPipe:
			return nil, fmt.Errorf("unknown load %q in -loads", l)
		case !slices.Contains(loads, l):
			loads = append(loads, l)
		}
	}
	return loads, nil
}

// preflight checks root and the tools every selected mode and load needs,
// and builds the agent when its binary is missing. perf is checked later, by
// checkPipe, since its absence only drops a load.
func preflight(ctx context.Context, o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: eBPF and kernel.bpf_stats_enabled")
	}
	var need []string
	if slices.Contains(o.loads, loadSwitch) {
		need = append(need, "stress-ng")
	}
	if slices.Contains(o.modes, modeNerve) || slices.Contains(o.modes, modeRunqlat) {
		need = append(need, "bpftool")
	}
	if err := benchkit.NeedTools(need...); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/stat"); err != nil {
		return fmt.Errorf("context switches are read from /proc/stat: %w", err)
	}
	if slices.Contains(o.modes, modeRunqlat) {
		if err := benchkit.NeedLibbpfTool(modeRunqlat, o.runqlat); err != nil {
			return err
		}
	}
	if slices.Contains(o.modes, modeNerve) {
		return o.agent.BuildIfMissing(ctx)
	}
	return nil
}

type bench struct {
	opts        options
	work        string // scratch directory: the agent's config, the tracers' logs
	stats       *benchkit.BPFStats
	pipeLoops   int    // -l of perf bench sched pipe, as checkPipe sized it
	pipeSkipped string // why perf bench sched pipe does not run, or ""
}

// checkPipe runs a short perf bench sched pipe and returns the -l for the
// real runs: loops when it is not 0, else as many as take about d with no
// tracer. It returns why the load cannot run instead when it cannot.
func checkPipe(ctx context.Context, d time.Duration, loops int) (int, string) {
	if _, err := exec.LookPath("perf"); err != nil {
		return 0, "perf not on PATH"
	}
	const checkLoops = 10000
	out, err := command(ctx, "perf", "bench", "sched", "pipe", "-l", strconv.Itoa(checkLoops))
	if err != nil {
		return 0, err.Error()
	}
	usecs, err := parsePerfPipe(out)
	if err != nil {
		return 0, err.Error()
	}
	if loops == 0 {
		loops = max(checkLoops, int(d.Seconds()*1e6/usecs))
	}
	return loops, ""
}

// runMode runs the load once with the mode's tracer attached for the whole run.
func (b *bench) runMode(ctx context.Context, load, mode string) (runResult, error) {
	if mode == modeNone {
		return b.runLoad(ctx, load)
	}

	var res runResult
	start := func() (*benchkit.Tracer, error) { return b.startTracer(ctx, mode) }
	progs, err := b.stats.MeasureUnder(ctx, start, b.opts.verbose, func() error {
		var err error
		res, err = b.runLoad(ctx, load)
		return err
	})
	if err != nil {
		return runResult{}, err
	}
	res.progs = progs
	return res, nil
}

// startTracer starts the agent or runqlat, with its output in the scratch
// directory.
func (b *bench) startTracer(ctx context.Context, mode string) (*benchkit.Tracer, error) {
	if mode == modeNerve {
		// The scheduler probes (runqueue; pagefault, which also hooks
		// sched_switch), and neither blockio nor jvm.
		return b.opts.agent.Start(ctx, b.work, "runqueue", "pagefault")
	}
	// One histogram after an hour: it stays attached until Stop's SIGINT,
	// and prints its histogram then.
	cmd := exec.Command(b.opts.runqlat, "3600", "1")
	return benchkit.StartTracer(mode, cmd, filepath.Join(b.work, mode+".log"))
}

// runLoad runs one load and counts the context switches the machine made
// meanwhile.
func (b *bench) runLoad(ctx context.Context, load string) (runResult, error) {
	before, err := readCtxt()
	if err != nil {
		return runResult{}, err
	}
	start := time.Now()
	var ops float64
	switch load {
	case loadSwitch:
		ops, err = b.stressNG(ctx)
	case loadPipe:
		ops, err = b.pipe(ctx)
	}
	if err != nil {
		return runResult{}, err
	}
	elapsed := time.Since(start)
	after, err := readCtxt()
	if err != nil {
		return runResult{}, err
	}
	return runResult{opsPerSec: ops, switches: after - before, elapsed: elapsed}, nil
}

// stressNG runs the switch stressor and returns its bogo ops/s (real time).
func (b *bench) stressNG(ctx context.Context) (float64, error) {
	secs := max(1, int(b.opts.duration.Round(time.Second)/time.Second))
	out, err := command(ctx, "stress-ng", "--switch", strconv.Itoa(b.opts.switchers),
		"--timeout", fmt.Sprintf("%ds", secs), "--metrics-brief")
	if err != nil {
		return 0, err
	}
	return parseStressNG(out, "switch")
}

// pipe runs perf bench sched pipe and returns its operations per second.
func (b *bench) pipe(ctx context.Context) (float64, error) {
	out, err := command(ctx, "perf", "bench", "sched", "pipe", "-l", strconv.Itoa(b.pipeLoops))
	if err != nil {
		return 0, err
	}
	usecs, err := parsePerfPipe(out)
	if err != nil {
		return 0, err
	}
	return 1e6 / usecs, nil
}

// command runs a load program and returns its stdout and stderr together. It
// gets a process group of its own, so that when ctx ends every process it
// forked is killed with it, not only the first.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return benchkit.CombinedOutput(cmd)
}

// parseStressNG returns the bogo ops/s (real time) of stressor from the
// metrics table stress-ng prints with --metrics-brief. Each line has a prefix
// ("stress-ng: metrc: [pid] ", "info:" instead of "metrc:" in releases before
// 0.15) of the same width:
//
//	stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
//	                          (secs)    (secs)    (secs)   (real time) (usr+sys time)
//	switch           121165      1.00      0.19      1.41    121357.28       75468.84
//
// The figures are right-aligned under their headings, so the one wanted is
// the field that ends where "(real time)" ends, whatever the prefix and
// whatever columns other releases add.
func parseStressNG(out, stressor string) (float64, error) {
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	nameCol, valueEnd := -1, -1
	for i, line := range lines {
		if nameCol < 0 {
			// The heading is two lines: the column names, then their units.
			c := strings.Index(line, "stressor")
			if c < 0 || !strings.Contains(line, "bogo ops/s") || i+1 >= len(lines) {
				continue
			}
			if e := strings.Index(lines[i+1], "(real time)"); e >= 0 {
				nameCol, valueEnd = c, e+len("(real time)")
			}
			continue
		}
		if len(line) < nameCol || !strings.HasPrefix(line[nameCol:], stressor+" ") {
			continue
		}
		if len(line) < valueEnd || (len(line) > valueEnd && line[valueEnd] != ' ') {
			return 0, fmt.Errorf("stress-ng: no figure under (real time) in %q", line)
		}
		start := strings.LastIndexByte(line[:valueEnd], ' ') + 1
		if start < nameCol+len(stressor) {
			return 0, fmt.Errorf("stress-ng: no figure under (real time) in %q", line)
		}
		field := line[start:valueEnd]
		v, err := strconv.ParseFloat(field, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("stress-ng: bogo ops/s (real time) %q is not a rate, in %q", field, line)
		}
		return v, nil
	}
	if nameCol < 0 {
		return 0, errors.New("stress-ng: no metrics table with a bogo ops/s (real time) column (run it with --metrics-brief)")
	}
	return 0, fmt.Errorf("stress-ng: no %q row in the metrics table", stressor)
}

// parsePerfPipe returns the microseconds per operation perf bench sched pipe
// reports:
//
//	Total time: 0.181 [sec]
//
//	 18.153300 usecs/op
//	     55086 ops/sec
func parsePerfPipe(out string) (float64, error) {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != "usecs/op" {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("perf bench sched pipe: usecs/op %q is not a positive number", f[0])
		}
		return v, nil
	}
	return 0, fmt.Errorf("perf bench sched pipe: no usecs/op in its output: %s", benchkit.OneLine(out, 300))
}

// readCtxt returns the context switches all CPUs made since boot.
func readCtxt() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseCtxt(data)
}

func parseCtxt(stat []byte) (uint64, error) {
	for line := range strings.Lines(string(stat)) {
		if v, ok := strings.CutPrefix(line, "ctxt "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat ctxt: %w", err)
			}
			return n, nil
		}
	}
	return 0, errors.New("/proc/stat: no ctxt line")
}

func (b *bench) report(w io.Writer, results map[key][]runResult) {
	o := b.opts
	var loads []string
	for _, l := range o.loads {
		loads = append(loads, b.loadTitle(l))
	}
	fmt.Fprintf(w, "\nscheduler tracing overhead: %s; no tracer vs nerve (runqueue, pagefault) vs runqlat\n", strings.Join(loads, ", "))
	fmt.Fprintf(w, "%s, %d rounds x %v per load and mode, modes interleaved; medians over rounds\n",
		benchkit.Machine(), o.rounds, o.duration)
	if b.pipeSkipped != "" {
		fmt.Fprintf(w, "perf bench sched pipe skipped: %s\n", b.pipeSkipped)
	}
	fmt.Fprintln(w)

	perSwitch := map[key]float64{}
	tw := benchkit.NewTable(w)
	fmt.Fprintln(tw, "load\tmode\tops/s\tspread %\tslowdown\tswitches/s\tBPF ns/switch\tBPF CPU %\trounds\t")
	for _, l := range o.loads {
		noneOps := benchkit.Median(benchkit.Pick(results[key{l, modeNone}], func(r runResult) float64 { return r.opsPerSec }))
		for _, m := range o.modes {
			rs := results[key{l, m}]
			if len(rs) == 0 {
				fmt.Fprintf(tw, "%s\t%s\tn/a\t\t\t\t\t\t0\t\n", l, m)
				continue
			}
			all := benchkit.Pick(rs, func(r runResult) float64 { return r.opsPerSec })
			ops := benchkit.Median(all)
			spread := benchkit.Spread(all, ops)
			sw := benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 { return float64(r.switches) / r.elapsed.Seconds() }))
			slowdown, nsSwitch, cpu := "-", "-", "-"
			if noneOps > 0 && ops > 0 {
				slowdown = fmt.Sprintf("%.3f", noneOps/ops)
			}
			if m != modeNone {
				perSwitch[key{l, m}] = benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
					return float64(benchkit.TotalNs(r.progs)) / float64(max(r.switches, 1))
				}))
				nsSwitch = fmt.Sprintf("%.0f", perSwitch[key{l, m}])
				cpu = fmt.Sprintf("%.2f", 100*benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
					return float64(benchkit.TotalNs(r.progs)) / float64(r.elapsed.Nanoseconds()) / float64(runtime.NumCPU())
				})))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%d\t\n", l, m, ops, spread, slowdown, sw, nsSwitch, cpu, len(rs))
		}
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = benchkit.NewTable(w)
	fmt.Fprintln(tw, "tool\tload\tprogram\truns\truns/switch\tns/run\t")
	for _, m := range o.modes {
		if m == modeNone {
			continue
		}
		for _, l := range o.loads {
			rs := results[key{l, m}]
			var switches uint64
			var progs [][]benchkit.ProgDelta
			for _, r := range rs {
				switches += r.switches
				progs = append(progs, r.progs)
			}
			benchkit.ProgramRows(tw, m+"\t"+l+"\t", progs, switches)
		}
	}
	tw.Flush()

	fmt.Fprintln(w)
	for _, l := range o.loads {
		if n, rq := perSwitch[key{l, modeNerve}], perSwitch[key{l, modeRunqlat}]; n > 0 && rq > 0 {
			fmt.Fprintf(w, "BPF ns per context switch, nerve/runqlat, %s: %.2f\n", l, n/rq)
		}
	}
	fmt.Fprintln(w, "ops/s is stress-ng's bogo ops/s (real time), or 1e6 / perf's usecs/op. slowdown is the no-tracer ops/s")
	fmt.Fprintln(w, "over the mode's; spread is (max - min) / median of the rounds' ops/s, and a slowdown nearer 1 than that")
	fmt.Fprintln(w, "is noise. Switches are the ctxt delta of /proc/stat over the load, on all CPUs. BPF run time is")
	fmt.Fprintln(w, "kernel.bpf_stats_enabled's, for the programs each tracer held; BPF CPU % is that time over the load's")
	fmt.Fprintln(w, "wall time on all CPUs. nerve runs its runqueue and pagefault probes; runqlat its one node-wide histogram.")
}

// loadTitle is the load's command line, for the report's heading.
func (b *bench) loadTitle(load string) string {
	switch load {
	case loadSwitch:
		return fmt.Sprintf("stress-ng --switch %d", b.opts.switchers)
	case loadPipe:
		return fmt.Sprintf("perf bench sched pipe -l %d", b.pipeLoops)
	}
	return load
}
