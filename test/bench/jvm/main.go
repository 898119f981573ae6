// Command jvm measures what watching a JVM's safepoints costs. It runs a
// safepoint-heavy Java program (jvm/javatest/java/SafepointLoop.java: a full
// GC, a stack walk and a thread dump in a loop) with no tracer and under the
// nerve agent (its jvm probe alone, which puts uprobes on HotSpot's USDT
// probes), interleaved over a few rounds. It prints the median throughput of
// each mode, as safepoints per second from the JVM's own safepoint log, next
// to the BPF run time the agent's programs spent per uprobe hit and per
// safepoint (kernel.bpf_stats_enabled, read with bpftool).
//
// An idle JVM runs for the whole bench in every mode, so that in the nerve
// mode libjvm.so is already attached when the measured JVM starts, as on a
// node with long-lived JVMs: the agent attaches its uprobes to a libjvm.so
// when it first finds a JVM using it, and detaches them when the last one
// exits.
//
// It only prints: no figure is asserted. It exits non-zero when the setup or a
// tool could not run. Run it as root from the repository root:
//
//	go run ./test/bench/jvm -duration 20s
package main

import (
	"bytes"
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nervehq/nerve/jvm/javatest"
	"github.com/nervehq/nerve/test/bench/benchkit"
)

const (
	modeNone  = "none"
	modeNerve = "nerve"

	loopClass = "SafepointLoop"
	idleClass = "NerveBenchIdle"

	// The agent scans /proc for new JVMs this often (jvm/probe's default),
	// so it finds the measured JVM within this long of its start.
	agentScan = 2 * time.Second
)

// idleSource is the JVM kept running through the bench. It is not one of
// jvm/javatest's programs because none of those is idle.
const idleSource = `public class ` + idleClass + ` {
    public static void main(String[] args) throws InterruptedException {
        Thread.sleep(Long.MAX_VALUE);
    }
}
`

type options struct {
	duration time.Duration
	rounds   int
	modes    []string
	agent    benchkit.Agent
	source   string // SafepointLoop.java
	verbose  bool
}

// runResult is one run of the Java program in one mode.
type runResult struct {
	safepoints int           // records in the JVM's safepoint log
	jvmTime    time.Duration // the time the log accounts for: Time since last + Total, summed
	meanPause  time.Duration // mean Total
	wall       time.Duration // exec to exit
	// nerve only: what the agent's programs did from the moment it watched
	// the JVM to the JVM's exit, and the safepoints the log has in that window.
	progs        []benchkit.ProgDelta
	windowPoints int
}

func main() {
	benchkit.Main("bench-jvm", run)
}

func run(ctx context.Context) int {
	var o options
	var modes string
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "run time of each Java run (whole seconds, at least 3)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; every mode runs once per round, in a rotating order")
	flag.StringVar(&modes, "tools", "none,nerve", "comma-separated modes: none, nerve")
	o.agent.Flags(flag.CommandLine)
	flag.StringVar(&o.source, "source", "jvm/javatest/java/SafepointLoop.java", "the safepoint-heavy Java program")
	flag.BoolVar(&o.verbose, "v", false, "print the agent's own output")
	flag.Parse()

	var err error
	if o.modes, err = benchkit.ParseModes(modes, modeNone, modeNerve); err != nil {
		log.Print(err)
		return 2
	}
	o.duration = o.duration.Round(time.Second)
	// Shorter, and the JVM may be gone before the agent's scan finds it.
	if len(o.modes) == 0 || o.rounds < 1 || o.duration < 3*time.Second {
		log.Print("need at least one mode, one round and -duration >= 3s")
		return 2
	}

	if err := preflight(ctx, &o); err != nil {
		log.Print(err)
		return 1
	}

	b := &bench{opts: o}
	if b.stats, err = benchkit.SaveBPFStats(); err != nil {
		log.Print(err)
		return 1
	}
	defer b.stats.RestoreOrLog()

	if b.work, err = os.MkdirTemp("", "nerve-bench-jvm-"); err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(b.work)

	if err := b.compile(ctx); err != nil {
		log.Print(err)
		return 1
	}
	if b.javaVersion, err = javaVersion(ctx); err != nil {
		log.Print(err)
		return 1
	}
	idle, err := b.startIdle()
	if err != nil {
		log.Print(err)
		return 1
	}
	defer func() {
		syscall.Kill(-idle.Process.Pid, syscall.SIGKILL)
		idle.Wait()
	}()
	b.idlePID = idle.Process.Pid

	rounds := benchkit.Rounds[string, runResult]{
		Count: o.rounds,
		Order: func(r int) []string { return benchkit.Rotate(o.modes, r) },
		Run:   func(r int, mode string) (runResult, error) { return b.runMode(ctx, mode, r) },
		Done: func(mode string, res runResult) string {
			return fmt.Sprintf("%-5s %7.1f safepoints/s, mean pause %7.1f µs, wall %.2f s", mode,
				res.rate(), float64(res.meanPause)/1e3, res.wall.Seconds())
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

// rate is the run's safepoints per second by the JVM's own clock.
func (r runResult) rate() float64 {
	if r.jvmTime <= 0 {
		return 0
	}
	return float64(r.safepoints) / r.jvmTime.Seconds()
}

// preflight checks root, the tools and the Java source, and builds the agent
// when its binary is missing.
func preflight(ctx context.Context, o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: eBPF and kernel.bpf_stats_enabled")
	}
	need := []string{"java", "javac"}
	if slices.Contains(o.modes, modeNerve) {
		need = append(need, "bpftool")
	}
	if err := benchkit.NeedTools(need...); err != nil {
		return err
	}
	if _, err := os.Stat(o.source); err != nil {
		return fmt.Errorf("%w (run the bench from the repository root, or give -source)", err)
	}
	if slices.Contains(o.modes, modeNerve) {
		return o.agent.BuildIfMissing(ctx)
	}
	return nil
}

type bench struct {
	opts        options
	work        string // scratch directory: classes, safepoint logs, the agent's config and log
	stats       *benchkit.BPFStats
	javaVersion string
	idlePID     int
}

// compile compiles the Java program and the idle JVM's class into work.
func (b *bench) compile(ctx context.Context) error {
	idle := filepath.Join(b.work, idleClass+".java")
	if err := os.WriteFile(idle, []byte(idleSource), 0o644); err != nil {
		return err
	}
	if _, err := command(ctx, "javac", "-d", b.classes(), "-encoding", "UTF-8", b.opts.source, idle); err != nil {
		return err
	}
	return nil
}

func (b *bench) classes() string { return filepath.Join(b.work, "classes") }

// javaVersion is the first line of `java -version`, for the report.
func javaVersion(ctx context.Context) (string, error) {
	out, err := command(ctx, "java", "-version")
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return line, nil
}

// startIdle starts the JVM that keeps libjvm.so attached. It has a process
// group of its own, which run kills when it returns, and dies with the bench
// if the bench is killed outright.
func (b *bench) startIdle() (*exec.Cmd, error) {
	cmd := exec.Command("java", "-cp", b.classes(), idleClass)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start idle JVM: %w", err)
	}
	return cmd, nil
}

// runMode runs the Java program once with the mode's tracer attached.
func (b *bench) runMode(ctx context.Context, mode string, round int) (runResult, error) {
	logPath := filepath.Join(b.work, fmt.Sprintf("safepoint-%s-%d.log", mode, round))
	if mode == modeNone {
		j, err := b.startLoop(ctx, logPath)
		if err != nil {
			return runResult{}, err
		}
		if err := j.wait(); err != nil {
			return runResult{}, err
		}
		return b.result(j, logPath, 0)
	}

	if err := b.stats.Enable(); err != nil {
		return runResult{}, err
	}
	defer b.stats.Restore()

	// The jvm probe alone, so that the BPF run time counts only the uprobes
	// on libjvm.so.
	t, err := b.opts.agent.Start(ctx, b.work, "jvm")
	if err != nil {
		return runResult{}, err
	}
	defer t.Stop()
	if err := t.WaitForPrograms(ctx); err != nil {
		return runResult{}, err
	}
	if err := waitWatched(ctx, t, b.idlePID, nil); err != nil {
		return runResult{}, fmt.Errorf("idle JVM: %w", err)
	}

	j, err := b.startLoop(ctx, logPath)
	if err != nil {
		return runResult{}, err
	}
	defer j.kill()
	// Until the agent has found the JVM, its programs return early for it:
	// the BPF figures start once it has.
	if err := waitWatched(ctx, t, j.cmd.Process.Pid, j.done); err != nil {
		return runResult{}, fmt.Errorf("%s: %w", loopClass, err)
	}
	before, err := benchkit.ProgSnapshot(ctx)
	if err != nil {
		return runResult{}, err
	}
	window := time.Since(j.start)
	if err := j.wait(); err != nil {
		return runResult{}, err
	}
	after, err := benchkit.ProgSnapshot(ctx)
	if err != nil {
		return runResult{}, err
	}
	ids, err := t.ProgIDs()
	if err != nil || t.Exited() {
		return runResult{}, fmt.Errorf("nerve exited during the run: %s", t.Tail())
	}
	res, err := b.result(j, logPath, window)
	if err != nil {
		return runResult{}, err
	}
	res.progs = benchkit.Deltas(ids, before, after)

	t.Finish(b.opts.verbose)
	return res, nil
}

// waitWatched waits until the agent's log says it watches the JVM pid with
// its USDT probes attached. It fails when the agent watches it without
// probes, when exited (if not nil) is closed first, or after a few scans.
func waitWatched(ctx context.Context, t *benchkit.Tracer, pid int, exited <-chan struct{}) error {
	limit := 5 * agentScan
	deadline := time.Now().Add(limit)
	for {
		if probes, ok := watchedInLog(t.Output(), pid); ok {
			if !probes {
				return fmt.Errorf("the agent watches pid %d without USDT probes (a libjvm.so built without them?): %s", pid, t.Tail())
			}
			return nil
		}
		if t.Exited() {
			return fmt.Errorf("nerve exited: %s", t.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent did not watch pid %d within %v: %s", pid, limit, t.Tail())
		}
		select {
		case <-exited:
			return errors.New("the JVM exited before the agent watched it (make -duration longer)")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchedInLog finds the agent's `msg="watching JVM" pid=<pid> ...
// probes=<bool>` line (slog's text format) for pid, and returns its probes.
func watchedInLog(out string, pid int) (probes, ok bool) {
	want := "pid=" + strconv.Itoa(pid)
	for line := range strings.Lines(out) {
		if !strings.Contains(line, `msg="watching JVM"`) {
			continue
		}
		f := strings.Fields(line)
		if !slices.Contains(f, want) {
			continue
		}
		return slices.Contains(f, "probes=true"), true
	}
	return false, false
}

// loop is one run of the Java program.
type loop struct {
	cmd   *exec.Cmd
	out   bytes.Buffer
	start time.Time
	wall  time.Duration // set by wait
	done  chan struct{} // closed when the JVM has exited
	err   error         // cmd.Wait's; read after done is closed
}

// startLoop starts the Java program for the run's duration, logging its
// safepoints to logPath. The JVM is killed with its process group when ctx
// ends.
func (b *bench) startLoop(ctx context.Context, logPath string) (*loop, error) {
	secs := strconv.Itoa(int(b.opts.duration / time.Second))
	// Quoted, because -Xlog splits its argument at ':' and ','. Empty
	// decorators are the defaults, [uptime][level][tags]; no rotation, so
	// the whole run is in one file.
	xlog := fmt.Sprintf("-Xlog:safepoint=info:file=%q::filecount=0", logPath)
	cmd := exec.CommandContext(ctx, "java", xlog, "-cp", b.classes(), loopClass, secs)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	j := &loop{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &j.out, &j.out
	j.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start java %s: %w", loopClass, err)
	}
	// Ends when the JVM exits, which ctx's end or kill forces.
	go func() {
		j.err = cmd.Wait()
		j.wall = time.Since(j.start)
		close(j.done)
	}()
	return j, nil
}

// wait waits for the JVM to exit and fails unless it exited with status 0.
func (j *loop) wait() error {
	<-j.done
	if j.err != nil {
		return fmt.Errorf("java %s: %w: %s", loopClass, j.err, benchkit.OneLine(j.out.String(), 300))
	}
	return nil
}

// kill ends the JVM if it still runs and waits for it.
func (j *loop) kill() {
	select {
	case <-j.done:
		return
	default:
	}
	syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
	<-j.done
}

// result reads the run's safepoint log. Records logged at or after window (JVM
// uptime, which starts a few milliseconds after exec) are the window's.
func (b *bench) result(j *loop, logPath string, window time.Duration) (runResult, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return runResult{}, fmt.Errorf("safepoint log: %w", err)
	}
	defer f.Close()
	recs, err := javatest.ParseSafepointLog(f)
	if err != nil {
		return runResult{}, fmt.Errorf("%s: %w", logPath, err)
	}
	if len(recs) == 0 {
		return runResult{}, fmt.Errorf("%s: no safepoints logged", logPath)
	}
	res := runResult{safepoints: len(recs), wall: j.wall}
	var total time.Duration
	for _, r := range recs {
		total += r.Total
		res.jvmTime += r.SinceLast + r.Total
		if r.Uptime >= window {
			res.windowPoints++
		}
	}
	res.meanPause = total / time.Duration(len(recs))
	return res, nil
}

// command runs a program and returns its stdout and stderr together.
func command(ctx context.Context, name string, args ...string) (string, error) {
	return benchkit.CombinedOutput(exec.CommandContext(ctx, name, args...))
}

func (b *bench) report(w io.Writer, results map[string][]runResult) {
	o := b.opts
	fmt.Fprintf(w, "\nJVM safepoint tracing overhead: java %s %d (System.gc, Thread.getAllStackTraces, dumpAllThreads, sleep 20 ms, in a loop); no tracer vs nerve (jvm probe)\n",
		loopClass, int(o.duration/time.Second))
	fmt.Fprintf(w, "%s, %s, %d rounds x %v per mode, modes interleaved; medians over rounds\n\n",
		benchkit.Machine(), b.javaVersion, o.rounds, o.duration)

	noneRate := benchkit.Median(benchkit.Pick(results[modeNone], runResult.rate))

	tw := benchkit.NewTable(w)
	fmt.Fprintln(tw, "mode\tsafepoints/s\tspread %\tslowdown\tmean pause µs\tJVM wall s\tBPF ns/safepoint\tBPF ns/hit\thits/safepoint\trounds\t")
	for _, m := range o.modes {
		rs := results[m]
		if len(rs) == 0 {
			fmt.Fprintf(tw, "%s\tn/a\t\t\t\t\t\t\t\t0\t\n", m)
			continue
		}
		all := benchkit.Pick(rs, runResult.rate)
		rate := benchkit.Median(all)
		spread := benchkit.Spread(all, rate)
		slowdown, nsPoint, nsHit, hits := "-", "-", "-", "-"
		if noneRate > 0 && rate > 0 {
			slowdown = fmt.Sprintf("%.3f", noneRate/rate)
		}
		if m != modeNone {
			nsPoint = fmt.Sprintf("%.0f", benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
				return float64(benchkit.TotalNs(r.progs)) / float64(max(r.windowPoints, 1))
			})))
			nsHit = fmt.Sprintf("%.0f", benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
				return float64(benchkit.TotalNs(r.progs)) / float64(max(benchkit.TotalRuns(r.progs), 1))
			})))
			hits = fmt.Sprintf("%.2f", benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 {
				return float64(benchkit.TotalRuns(r.progs)) / float64(max(r.windowPoints, 1))
			})))
		}
		pause := benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 { return float64(r.meanPause) / 1e3 }))
		wall := benchkit.Median(benchkit.Pick(rs, func(r runResult) float64 { return r.wall.Seconds() }))
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%.1f\t%.2f\t%s\t%s\t%s\t%d\t\n", m, rate, spread, slowdown, pause, wall, nsPoint, nsHit, hits, len(rs))
	}
	tw.Flush()

	if rs := results[modeNerve]; len(rs) > 0 {
		fmt.Fprintln(w)
		tw = benchkit.NewTable(w)
		fmt.Fprintln(tw, "tool\tprogram\truns\truns/safepoint\tns/run\t")
		var points int
		var progs [][]benchkit.ProgDelta
		for _, r := range rs {
			points += r.windowPoints
			progs = append(progs, r.progs)
		}
		benchkit.ProgramRows(tw, modeNerve+"\t", progs, uint64(points))
		tw.Flush()
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "safepoints/s is the records in the JVM's own safepoint log (-Xlog:safepoint) over the time the log accounts")
	fmt.Fprintln(w, "for (Time since last + Total, summed: from the JVM's start to its last safepoint's end); mean pause is the")
	fmt.Fprintln(w, "mean Total. slowdown is the no-tracer safepoints/s over the mode's; spread is (max - min) / median of the")
	fmt.Fprintln(w, "rounds' safepoints/s, and a slowdown nearer 1 than that is noise. JVM wall is exec to exit, start-up included.")
	fmt.Fprintln(w, "BPF run time is kernel.bpf_stats_enabled's, for the programs the agent held, from when the agent watched the")
	fmt.Fprintf(w, "JVM (its /proc scan, every %v) to the JVM's exit, per safepoint the log has in that window; a hit is one\n", agentScan)
	fmt.Fprintln(w, "program run, one per uprobe hit. An idle JVM runs throughout in both modes, to keep libjvm.so attached; its")
	fmt.Fprintln(w, "few safepoints add hits. A uprobe hit also costs a trap into the kernel and back (~1-3 µs) that")
	fmt.Fprintln(w, "bpf_stats does not count: BPF ns/hit is only the BPF part, and the trap shows in the slowdown alone.")
}
