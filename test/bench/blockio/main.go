// Command blockio measures what tracing block I/O costs. It runs one fio load
// on a fresh tmpfs-backed loop device with no tracer, under the nerve agent and
// under libbpf-tools' biolatency, interleaved over a few rounds, and prints the
// median IOPS of each mode next to the BPF run time each tracer's programs
// spent per completed I/O (kernel.bpf_stats_enabled, read with bpftool).
//
// It only prints: no figure is asserted. It exits non-zero when the setup or a
// tool could not run. Run it as root from the repository root:
//
//	go run ./test/bench/blockio -duration 20s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/fio"
)

const (
	modeNone       = "none"
	modeNerve      = "nerve"
	modeBiolatency = "biolatency"

	statsSysctl = "/proc/sys/kernel/bpf_stats_enabled"
)

type options struct {
	duration   time.Duration
	rounds     int
	modes      []string
	nerve      string
	listen     string
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
	progs    []progDelta
}

// progDelta is what one BPF program did while fio ran.
type progDelta struct {
	name     string
	runs, ns uint64
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench-blockio: ")
	os.Exit(run())
}

func run() int {
	var o options
	var modes string
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "fio runtime of each run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; every mode runs once per round, in a rotating order")
	flag.StringVar(&modes, "tools", "none,biolatency,nerve", "comma-separated modes: none, biolatency, nerve")
	flag.StringVar(&o.nerve, "nerve", "bin/nerve", "nerve binary; built from ./cmd/nerve when missing")
	flag.StringVar(&o.listen, "listen", "", "address the agent listens on during the bench (default: a free port on 127.0.0.1)")
	flag.StringVar(&o.biolatency, "biolatency", "/usr/sbin/biolatency", "libbpf-tools biolatency binary")
	flag.Int64Var(&o.sizeMiB, "size", 512, "loop device size, MiB (held in RAM)")
	flag.IntVar(&o.iodepth, "iodepth", 16, "fio iodepth")
	flag.StringVar(&o.scheduler, "scheduler", "none", "I/O scheduler of the loop device")
	flag.BoolVar(&o.verbose, "v", false, "print each tracer's own output")
	flag.Parse()

	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case modeNone, modeNerve, modeBiolatency:
			if !slices.Contains(o.modes, m) {
				o.modes = append(o.modes, m)
			}
		case "":
		default:
			log.Printf("unknown mode %q in -tools", m)
			return 2
		}
	}
	if len(o.modes) == 0 || o.rounds < 1 || o.duration < time.Second {
		log.Print("need at least one mode, one round and -duration >= 1s")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := preflight(ctx, &o); err != nil {
		log.Print(err)
		return 1
	}

	oldStats, err := os.ReadFile(statsSysctl)
	if err != nil {
		log.Printf("read %s: %v", statsSysctl, err)
		return 1
	}
	// Every run restores the old value itself; this covers errors and signals.
	defer func() {
		if err := os.WriteFile(statsSysctl, oldStats, 0); err != nil {
			log.Printf("restore %s: %v", statsSysctl, err)
		}
	}()

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

	b := &bench{opts: o, disk: disk, work: work, oldStats: oldStats}
	results := map[string][]runResult{}
	failed := map[string]error{}
	for r := range o.rounds {
		for i := range o.modes {
			mode := o.modes[(i+r)%len(o.modes)]
			if failed[mode] != nil {
				continue
			}
			res, err := b.runMode(ctx, mode)
			if ctx.Err() != nil {
				log.Print("interrupted")
				return 130
			}
			if err != nil {
				log.Printf("round %d/%d %s: %v", r+1, o.rounds, mode, err)
				failed[mode] = err
				continue
			}
			log.Printf("round %d/%d %-10s %9.0f IOPS", r+1, o.rounds, mode, res.iops)
			results[mode] = append(results[mode], res)
		}
	}

	b.report(os.Stdout, results)
	if len(failed) > 0 {
		for _, m := range o.modes {
			if err := failed[m]; err != nil {
				log.Printf("%s could not run: %v", m, err)
			}
		}
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
	for _, n := range need {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s not on PATH (sudo make deps)", n)
		}
	}
	if slices.Contains(o.modes, modeBiolatency) {
		if _, err := os.Stat(o.biolatency); err != nil {
			return fmt.Errorf("biolatency: %w (sudo make deps installs libbpf-tools)", err)
		}
	}
	if slices.Contains(o.modes, modeNerve) {
		if _, err := os.Stat(o.nerve); errors.Is(err, os.ErrNotExist) {
			log.Printf("building %s", o.nerve)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", o.nerve, "./cmd/nerve")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build nerve: %w", err)
			}
		}
	}
	return nil
}

type bench struct {
	opts     options
	disk     *faults.FastDisk
	work     string // scratch directory: the disk and the tracers' logs
	oldStats []byte // kernel.bpf_stats_enabled before the bench
}

// runMode runs fio once with the mode's tracer attached for the whole run.
func (b *bench) runMode(ctx context.Context, mode string) (runResult, error) {
	if mode == modeNone {
		return b.fio(ctx)
	}

	if err := os.WriteFile(statsSysctl, []byte("1\n"), 0); err != nil {
		return runResult{}, fmt.Errorf("enable bpf stats: %w", err)
	}
	defer os.WriteFile(statsSysctl, b.oldStats, 0)

	t, err := b.startTracer(ctx, mode)
	if err != nil {
		return runResult{}, err
	}
	defer t.stop()

	if err := t.waitForPrograms(ctx); err != nil {
		return runResult{}, err
	}
	before, err := progSnapshot(ctx)
	if err != nil {
		return runResult{}, err
	}
	res, err := b.fio(ctx)
	if err != nil {
		return runResult{}, err
	}
	after, err := progSnapshot(ctx)
	if err != nil {
		return runResult{}, err
	}
	ids, err := t.progIDs()
	if err != nil || t.exited() {
		return runResult{}, fmt.Errorf("%s exited during the run: %s", mode, t.tail())
	}
	res.progs = deltas(ids, before, after)
	if err := t.stop(); err != nil && b.opts.verbose {
		log.Printf("%s: stop: %v", mode, err)
	}
	if b.opts.verbose {
		fmt.Fprintf(os.Stderr, "--- %s output ---\n%s\n", mode, t.output())
	}
	return res, nil
}

// tracer is a running nerve or biolatency process.
type tracer struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done closes
	stopped bool
}

func (b *bench) startTracer(ctx context.Context, mode string) (*tracer, error) {
	var cmd *exec.Cmd
	listen := b.opts.listen
	var err error
	switch mode {
	case modeNerve:
		if listen == "" {
			// Not the agent's own port: an agent may already be running.
			if listen, err = freePort(); err != nil {
				return nil, err
			}
		}
		cmd = exec.Command(b.opts.nerve, "agent", "--bpf-stats", "--web.listen-address="+listen)
	case modeBiolatency:
		// -Q counts queue time too, as nerve does; -D keeps a histogram per disk.
		cmd = exec.Command(b.opts.biolatency, "-Q", "-D")
	}
	logPath := filepath.Join(b.work, mode+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", mode, err)
	}
	t := &tracer{name: mode, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	// This goroutine ends when the process exits; stop makes sure it does.
	go func() {
		t.waitErr = cmd.Wait()
		close(t.done)
	}()

	if mode == modeNerve {
		if err := t.waitHealthy(ctx, "http://"+listen+"/healthz", 30*time.Second); err != nil {
			t.stop()
			return nil, err
		}
	}
	return t, nil
}

// freePort returns a loopback address no one listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (t *tracer) exited() bool {
	select {
	case <-t.done:
		return !t.stopped
	default:
		return false
	}
}

func (t *tracer) waitHealthy(ctx context.Context, url string, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-t.done:
			return fmt.Errorf("nerve exited before %s answered: %v: %s", url, t.waitErr, t.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v: %s", url, limit, t.tail())
		}
	}
}

// stop sends SIGINT (biolatency prints its histograms then; the agent shuts
// down) and kills the process if it has not exited after 10 s.
func (t *tracer) stop() error {
	select {
	case <-t.done:
		return nil
	default:
	}
	t.stopped = true
	t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
		return errors.New("killed after 10s without exiting on SIGINT")
	}
	var exit *exec.ExitError
	if errors.As(t.waitErr, &exit) && exit.ExitCode() > 0 {
		return t.waitErr
	}
	return nil
}

func (t *tracer) output() string {
	b, _ := os.ReadFile(t.logPath)
	return strings.TrimSpace(string(b))
}

// tail is the end of the tracer's output, for error messages.
func (t *tracer) tail() string {
	out := t.output()
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	if out == "" {
		return "(no output)"
	}
	return out
}

// progIDs returns the BPF programs the tracer holds, as program or link file
// descriptors. bpftool's pids field would say the same, but only when bpftool
// was built with skeletons, and Debian 12's is not.
func (t *tracer) progIDs() (map[uint32]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", t.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ids := map[uint32]bool{}
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[uint32(id)] = true
				}
			}
		}
	}
	return ids, nil
}

// waitForPrograms waits until the tracer holds BPF programs and their set has
// not changed for a second, so fio starts with everything attached.
func (t *tracer) waitForPrograms(ctx context.Context) error {
	const limit = 20 * time.Second
	deadline := time.Now().Add(limit)
	var last []uint32
	var stableSince time.Time
	for {
		held, err := t.progIDs()
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		ids := slices.Sorted(maps.Keys(held))
		if len(ids) > 0 && slices.Equal(ids, last) {
			if time.Since(stableSince) >= time.Second {
				return nil
			}
		} else {
			last, stableSince = ids, time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s loaded no BPF programs within %v: %s", t.name, limit, t.tail())
		}
		select {
		case <-t.done:
			return fmt.Errorf("%s exited: %v: %s", t.name, t.waitErr, t.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// progStat is one entry of `bpftool prog show -j`. run_time_ns and run_cnt
// are there only while kernel.bpf_stats_enabled is (or was) on.
type progStat struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
}

func progSnapshot(ctx context.Context) (map[uint32]progStat, error) {
	out, err := exec.CommandContext(ctx, "bpftool", "prog", "show", "-j").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", exitDetail(err))
	}
	var progs []progStat
	if err := json.Unmarshal(out, &progs); err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	m := make(map[uint32]progStat, len(progs))
	for _, p := range progs {
		m[p.ID] = p
	}
	return m, nil
}

// deltas is what each of the programs ids did between two snapshots.
func deltas(ids map[uint32]bool, before, after map[uint32]progStat) []progDelta {
	var ds []progDelta
	for id := range ids {
		a, ok := after[id]
		if !ok {
			continue
		}
		b := before[id] // zero when loaded during the run
		ds = append(ds, progDelta{name: a.Name, runs: a.RunCnt - b.RunCnt, ns: a.RunTimeNs - b.RunTimeNs})
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].name < ds[j].name })
	return ds
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
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	o := b.opts
	fmt.Fprintf(w, "\nblock I/O tracing overhead: fio randread bs=4k iodepth=%d libaio direct on %s (%d MiB on tmpfs, loop direct I/O %v, scheduler %s)\n",
		o.iodepth, b.disk.Device(), o.sizeMiB, b.disk.DirectIO(), o.scheduler)
	fmt.Fprintf(w, "kernel %s, %d CPUs, %d rounds x %v per mode, modes interleaved; medians over rounds\n\n",
		strings.TrimSpace(string(kernel)), runtime.NumCPU(), o.rounds, o.duration)

	noneIOPS := median(pick(results[modeNone], func(r runResult) float64 { return r.iops }))
	perIO := map[string]float64{}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tIOPS\tvs none\tclat mean µs\tBPF ns/IO\tBPF ns/req\trounds\t")
	for _, m := range o.modes {
		rs := results[m]
		if len(rs) == 0 {
			fmt.Fprintf(tw, "%s\tn/a\t\t\t\t\t0\t\n", m)
			continue
		}
		iops := median(pick(rs, func(r runResult) float64 { return r.iops }))
		clat := median(pick(rs, func(r runResult) float64 { return r.clatMean }))
		ratio, nsIO, nsReq := "-", "-", "-"
		if noneIOPS > 0 {
			ratio = fmt.Sprintf("%.3f", iops/noneIOPS)
		}
		if m != modeNone {
			perIO[m] = median(pick(rs, func(r runResult) float64 {
				var ns uint64
				for _, p := range r.progs {
					ns += p.ns
				}
				return float64(ns) / float64(r.ios)
			}))
			nsIO = fmt.Sprintf("%.0f", perIO[m])
			nsReq = fmt.Sprintf("%.0f", median(pick(rs, func(r runResult) float64 {
				var ns, most uint64
				for _, p := range r.progs {
					ns += p.ns
					most = max(most, p.runs)
				}
				return float64(ns) / float64(max(most, 1))
			})))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.1f\t%s\t%s\t%d\t\n", m, iops, ratio, clat/1e3, nsIO, nsReq, len(rs))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tprogram\truns\truns/IO\tns/run\t")
	for _, m := range o.modes {
		rs := results[m]
		if m == modeNone || len(rs) == 0 {
			continue
		}
		var ios uint64
		type sum struct{ runs, ns uint64 }
		sums := map[string]*sum{}
		var names []string
		for _, r := range rs {
			ios += r.ios
			for _, p := range r.progs {
				s := sums[p.name]
				if s == nil {
					s = &sum{}
					sums[p.name] = s
					names = append(names, p.name)
				}
				s.runs += p.runs
				s.ns += p.ns
			}
		}
		sort.Strings(names)
		for _, n := range names {
			s := sums[n]
			nsRun := "-"
			if s.runs > 0 {
				nsRun = fmt.Sprintf("%.0f", float64(s.ns)/float64(s.runs))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%s\t\n", m, n, s.runs, float64(s.runs)/float64(ios), nsRun)
		}
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

func pick(rs []runResult, f func(runResult) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// exitDetail adds a failed command's stderr to its error.
func exitDetail(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exit.Stderr)))
	}
	return err
}
