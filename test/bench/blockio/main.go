// Command blockio measures what tracing block I/O costs. It runs one fio load
// on a fresh tmpfs-backed loop device with no tracer, under the nerve agent
// (its blockio probe alone) and under libbpf-tools' biolatency, interleaved
// over a few rounds, and prints the median IOPS of each mode next to the BPF
// run time each tracer's programs spent per completed I/O
// (kernel.bpf_stats_enabled, read with bpftool).
//
// It only prints: no figure is asserted. It exits non-zero when the setup or a
// tool could not run. Run it as root from the repository root:
//
//	go run ./test/bench/blockio -duration 20s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/fio"
	"github.com/nervehq/nerve/test/bench/benchkit"
)

const (
	modeNone       = "none"
	modeNerve      = "nerve"
	modeBiolatency = "biolatency"
)

type options struct {
	duration   time.Duration
	rounds     int
	modes      []string
	agent      benchkit.Agent
	biolatency string
	sizeMiB    int64
	scheduler  string
	iodepth    int
	verbose    bool
}

// runResult is one fio run in one mode.
type runResult struct {
	iops     float64
	ios      uint64  // completed I/Os, as fio counts them
	clatMean float64 // fio's mean completion latency, ns
	progs    []benchkit.ProgDelta
}

func main() {
	benchkit.Main("bench-blockio", run)
}

func run(ctx context.Context) int {
	var o options
	var modes string
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "fio runtime of each run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; every mode runs once per round, in a rotating order")
	flag.StringVar(&modes, "tools", "none,biolatency,nerve", "comma-separated modes: none, biolatency, nerve")
	o.agent.Flags(flag.CommandLine)
	flag.StringVar(&o.biolatency, "biolatency", "/usr/sbin/biolatency", "libbpf-tools biolatency binary")
	flag.Int64Var(&o.sizeMiB, "size", 512, "loop device size, MiB (held in RAM)")
	flag.IntVar(&o.iodepth, "iodepth", 16, "fio iodepth")
	flag.StringVar(&o.scheduler, "scheduler", "none", "I/O scheduler of the loop device")
	flag.BoolVar(&o.verbose, "v", false, "print each tracer's own output")
	flag.Parse()

	var err error
	if o.modes, err = benchkit.ParseModes(modes, modeNone, modeNerve, modeBiolatency); err != nil {
		log.Print(err)
		return 2
	}
	if len(o.modes) == 0 || o.rounds < 1 || o.duration < time.Second {
		log.Print("need at least one mode, one round and -duration >= 1s")
		return 2
	}

	if err := preflight(ctx, &o); err != nil {
		log.Print(err)
		return 1
	}

	stats, err := benchkit.SaveBPFStats()
	if err != nil {
		log.Print(err)
		return 1
	}
	defer stats.RestoreOrLog()

	// A fixed scratch directory, so that a run killed outright is cleaned
	// up by the next one.
	work := filepath.Join(os.TempDir(), "nerve-bench-blockio")
	if _, err := faults.CleanupLeftovers(work); err != nil {
		log.Print(err)
		return 1
	}
	defer func() {
		if _, err := faults.CleanupLeftovers(work); err != nil {
			log.Print(err)
		}
	}()
	disk, err := faults.NewFastDisk(work, o.sizeMiB<<20)
	if err != nil {
		log.Print(err)
		return 1
	}
	defer func() {
		if err := disk.Close(); err != nil {
			log.Print(err)
		}
	}()

	// Set it every time: a loop device keeps the scheduler an earlier user
	// chose, across detach and attach.
	if err := disk.SetScheduler(o.scheduler); err != nil {
		log.Print(err)
		return 1
	}

	b := &bench{opts: o, disk: disk, work: work, stats: stats}
	rounds := benchkit.Rounds[string, runResult]{
		Count: o.rounds,
		Order: func(r int) []string { return benchkit.Rotate(o.modes, r) },
		Run:   func(_ int, mode string) (runResult, error) { return b.runMode(ctx, mode) },
		Done: func(mode string, res runResult) string {
			return fmt.Sprintf("%-10s %9.0f IOPS", mode, res.iops)
		},
	}
	results, failed, err := rounds.Do(ctx)
	if err != nil {
		return 130
	}
	b.report(os.Stdout, results)
	if rounds.LogFailed(failed, nil) {
		return 1
	}
	return 0
}

// preflight checks root and the tools every selected mode needs, and builds
// the agent when its binary is missing.
func preflight(ctx context.Context, o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: loop devices, mounts and eBPF")
	}
	need := []string{"fio", "losetup"}
	if slices.Contains(o.modes, modeNerve) || slices.Contains(o.modes, modeBiolatency) {
		need = append(need, "bpftool")
	}
	if err := benchkit.NeedTools(need...); err != nil {
		return err
	}
	if slices.Contains(o.modes, modeBiolatency) {
		if err := benchkit.NeedLibbpfTool(modeBiolatency, o.biolatency); err != nil {
			return err
		}
	}
	if slices.Contains(o.modes, modeNerve) {
		return o.agent.BuildIfMissing(ctx)
	}
	return nil
}

type bench struct {
	opts  options
	disk  *faults.FastDisk
	work  string // scratch directory: the disk and the tracers' logs
	stats *benchkit.BPFStats
}

// runMode runs fio once with the mode's tracer attached for the whole run.
func (b *bench) runMode(ctx context.Context, mode string) (runResult, error) {
	if mode == modeNone {
		return b.fio(ctx)
	}

	var res runResult
	start := func() (*benchkit.Tracer, error) { return b.startTracer(ctx, mode) }
	progs, err := b.stats.MeasureUnder(ctx, start, b.opts.verbose, func() error {
		var err error
		res, err = b.fio(ctx)
		return err
	})
	if err != nil {
		return runResult{}, err
	}
	res.progs = progs
	return res, nil
}

// startTracer starts nerve or biolatency, with its output in the scratch
// directory.
func (b *bench) startTracer(ctx context.Context, mode string) (*benchkit.Tracer, error) {
	if mode == modeNerve {
		// The blockio probe alone, so that the BPF run time per I/O counts
		// only block I/O programs (the scheduler probes would run on every
		// context switch fio causes).
		return b.opts.agent.Start(ctx, b.work, "blockio")
	}
	// -Q counts queue time too, as nerve does; -D keeps a histogram per disk.
	cmd := exec.Command(b.opts.biolatency, "-Q", "-D")
	return benchkit.StartTracer(mode, cmd, filepath.Join(b.work, mode+".log"))
}

func (b *bench) fio(ctx context.Context) (runResult, error) {
	rep, err := fio.Run(ctx,
		"--name=b", "--thread", "--filename="+b.disk.Device(), "--direct=1", "--rw=randread", "--bs=4k",
		fmt.Sprintf("--iodepth=%d", b.opts.iodepth), "--ioengine=libaio",
		"--time_based", fmt.Sprintf("--runtime=%ds", int(b.opts.duration.Seconds())))
	if err != nil {
		return runResult{}, err
	}
	reads, _ := rep.TotalIOs()
	if len(rep.Jobs) != 1 || reads == 0 {
		return runResult{}, fmt.Errorf("fio: %d jobs, %d reads; want 1 job and some reads", len(rep.Jobs), reads)
	}
	return runResult{iops: rep.IOPS(), ios: reads, clatMean: rep.Jobs[0].Read.Clat.Mean}, nil
}

func (b *bench) report(w io.Writer, results map[string][]runResult) {
	o := b.opts
	fmt.Fprintf(w, "\nblock I/O tracing overhead: fio randread bs=4k iodepth=%d libaio direct on %s (%d MiB on tmpfs, loop direct I/O %v, scheduler %s)\n",
		o.iodepth, b.disk.Device(), o.sizeMiB, b.disk.DirectIO(), o.scheduler)
	fmt.Fprintf(w, "%s, %d rounds x %v per mode, modes interleaved; medians over rounds\n\n",
		benchkit.Machine(), o.rounds, o.duration)

	noneIOPS := benchkit.Median(benchkit.Pick(results[modeNone], func(r runResult) float64 { return r.iops }))
	perIO := map[string]float64{}

	tw := benchkit.NewTable(w)
	fmt.Fprintln(tw, "mode\tIOPS\tvs none\tclat mean µs\tBPF ns/IO\tBPF ns/req\trounds\t")
	for _, m := range o.modes {
		rs := results[m]
		if len(rs) == 0 {
			fmt.Fprintf(tw, "%s\tn/a\t\t\t\t\t0\t\n", m)
			continue
		}
		iops := benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 { return r.iops }))
		clat := benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 { return r.clatMean }))
		ratio, nsIO, nsReq := "-", "-", "-"
		if noneIOPS > 0 {
			ratio = fmt.Sprintf("%.3f", iops/noneIOPS)
		}
		if m != modeNone {
			perIO[m] = benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
				return float64(benchkit.TotalNs(r.progs)) / float64(r.ios)
			}))
			nsIO = fmt.Sprintf("%.0f", perIO[m])
			nsReq = fmt.Sprintf("%.0f", benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
				var ns, most uint64
				for _, p := range r.progs {
					ns += p.Ns
					most = max(most, p.Runs)
				}
				return float64(ns) / float64(max(most, 1))
			})))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.1f\t%s\t%s\t%d\t\n", m, iops, ratio, clat/1e3, nsIO, nsReq, len(rs))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = benchkit.NewTable(w)
	fmt.Fprintln(tw, "tool\tprogram\truns\truns/IO\tns/run\t")
	for _, m := range o.modes {
		rs := results[m]
		if m == modeNone || len(rs) == 0 {
			continue
		}
		var ios uint64
		var progs [][]benchkit.ProgDelta
		for _, r := range rs {
			ios += r.ios
			progs = append(progs, r.progs)
		}
		benchkit.ProgramRows(tw, m+"\t", progs, ios)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if n, bl := perIO[modeNerve], perIO[modeBiolatency]; n > 0 && bl > 0 {
		fmt.Fprintf(w, "BPF ns per I/O, nerve/biolatency: %.2f\n", n/bl)
	}
	fmt.Fprintln(w, "BPF run time is kernel.bpf_stats_enabled's, for the programs each tracer held. Programs run for I/O on every")
	fmt.Fprintln(w, "disk: ns/IO divides by fio's I/O alone (so other disks' I/O inflates it; see runs/IO), ns/req by the runs")
	fmt.Fprintln(w, "of the tracer's most-run program (about one per request on any disk).")
}
