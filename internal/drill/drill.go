package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/diagnose"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
	"github.com/nervehq/nerve/jvm/thrash"
	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/pagefault"
	"github.com/nervehq/nerve/probes/runqueue"
	"github.com/nervehq/nerve/probes/targets"
)

// Tick is how often a drill samples the probes and steps the rules.
const Tick = 2 * time.Second

// drillFor is the for and clear_for of every rule in DrillGoals: with a
// 2 s tick, a figure above enter in two windows in a row enters the rule.
const drillFor = time.Second

// drillTimeout bounds one drill from the fault's onset.
const drillTimeout = 60 * time.Second

// Names lists the drills in the order `all` runs them: one fault each.
var Names = []string{"slow-disk", "disk-overload", "cpu-overload", "memory-stall", "query-of-death"}

// Controls are scenarios with no fault: a busy but healthy machine, on
// which nerve must reach no diagnosis at all.
var Controls = []string{"healthy-busy"}

// Mixed are scenarios with two things wrong at once, where each must be
// told apart: a slow drive that is also overloaded must be diagnosed slow
// (replace it), not merely overloaded (shed load).
var Mixed = []string{"overloaded-slow-disk", "slow-disk-cpu-overload"}

// Scenarios lists every name Expand accepts besides "all", in the order
// `scenarios` runs them.
var Scenarios = slices.Concat(Names, Controls, Mixed)

// controlFor is how long a control scenario watches for a diagnosis that
// must not come: fifteen windows.
const controlFor = 30 * time.Second

// targetName is the target the drills' cgroup is watched as.
const targetName = "nerve-drill"

// DrillGoals are the default goals with every for and clear_for shortened
// to 1 s, so that two 2 s windows in a row above enter a rule: the
// thresholds a drill is judged by are the production ones.
func DrillGoals() goals.Goals {
	g := goals.Default()
	g.Disk.ServiceIdleP99.For, g.Disk.ServiceIdleP99.ClearFor = drillFor, drillFor
	g.Disk.QueueP99.For, g.Disk.QueueP99.ClearFor = drillFor, drillFor
	g.CPU.RunQueueP99.For, g.CPU.RunQueueP99.ClearFor = drillFor, drillFor
	g.Memory.PageFaultStallP99.For, g.Memory.PageFaultStallP99.ClearFor = drillFor, drillFor
	g.JVM.StoppedFraction.For, g.JVM.StoppedFraction.ClearFor = drillFor, drillFor
	return g
}

// DrillThrash is the JVM thrash detector of the drills: jvmquake's weight
// with a 2 s bucket instead of 30 s, so a thrashing JVM is over in seconds.
var DrillThrash = thrash.Config{Threshold: 2 * time.Second, Weight: thrash.DefaultWeight}

// Options say which drills to run and where.
type Options struct {
	Drills  []string // names from Names; "all" expands to all of them
	Scratch string   // "" = DefaultScratch
	// Progress, when set, gets a line per tick saying what runs and what
	// has been seen. With Overwrite, each line replaces the last (a
	// terminal).
	Progress  io.Writer
	Overwrite bool
	Logger    *slog.Logger // nil = discard
}

// Result is one drill's outcome.
type Result struct {
	Drill string `json:"drill"`
	Fault string `json:"fault"` // what was done, on what
	// Expected is the diagnosis the drill is about; none for a control,
	// which passes when nothing enters for its whole run.
	Expected actuator.Kind `json:"expected,omitempty"`
	Subject  string        `json:"subject"`           // where the diagnosis was expected
	Reached  actuator.Kind `json:"reached,omitempty"` // the expected kind when reached, else the first other kind on the subject
	// AlsoExpected are the other diagnoses a mixed scenario must reach,
	// "kind on subject"; AlsoReached those that were.
	AlsoExpected []string `json:"also_expected,omitempty"`
	AlsoReached  []string `json:"also_reached,omitempty"`
	// Entered is every diagnosis that entered during the drill, "kind on
	// subject", in order.
	Entered []string `json:"entered"`
	// Action is the ladder's choice for the diagnosis reached; Plan holds
	// the whole plan with the rungs considered.
	Action       string        `json:"action,omitempty"`
	Rung         actuator.Rung `json:"rung,omitempty"`
	Mode         actuator.Mode `json:"mode,omitempty"`
	Plan         *ladder.Plan  `json:"plan,omitempty"`
	TimeToDetect time.Duration `json:"time_to_detect_ns,omitempty"`
	Seconds      float64       `json:"time_to_detect_seconds,omitempty"`
	Passed       bool          `json:"passed"`
	Error        string        `json:"error,omitempty"` // why it did not pass
	Took         time.Duration `json:"took_ns"`         // setup to teardown
}

// Report is a run of one or more drills.
type Report struct {
	Results []Result `json:"results"`
	Passed  bool     `json:"passed"` // every drill's diagnosis matched
	// Cleaned is what was left by an earlier run and removed at start.
	Cleaned []string `json:"cleaned,omitempty"`
}

// Expand checks names and expands "all".
func Expand(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		switch {
		case n == "all":
			out = append(out, Names...)
		case n == "scenarios":
			out = append(out, Scenarios...)
		case slices.Contains(Scenarios, n):
			out = append(out, n)
		default:
			return nil, fmt.Errorf("unknown drill %q: want one of %v, all (the drills) or scenarios (drills, controls and mixed cases)", n, Scenarios)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no drill named")
	}
	return out, nil
}

// Run runs the drills in order and returns their report. It stops early
// when ctx ends, after removing what it made; the report then holds the
// drills that finished. An error means the drills could not run at all
// (not root, no BPF, the scratch directory busy), or the cleanup failed.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	names, err := Expand(o.Drills)
	if err != nil {
		return nil, err
	}
	if o.Scratch == "" {
		o.Scratch = DefaultScratch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sc, cleaned, err := openScratch(o.Scratch)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	rep = &Report{Cleaned: cleaned}
	defer func() {
		if cerr := sc.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("drill: cleanup: %w", cerr))
		}
	}()
	cgRel, cgDir, err := sc.makeCgroup()
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	ps, err := startProbes(o.Logger, cgRel)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	defer ps.close()

	env := &env{sc: sc, cgRel: cgRel, cgDir: cgDir, probes: ps}
	rep.Passed = true
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		r := env.run(ctx, o, n)
		rep.Results = append(rep.Results, r)
		rep.Passed = rep.Passed && r.Passed
	}
	if ctx.Err() != nil {
		rep.Passed = false
		return rep, fmt.Errorf("drill: interrupted: %w", ctx.Err())
	}
	return rep, nil
}

// probeSet is the agent's probes, started once for all drills.
type probeSet struct {
	logger *slog.Logger
	block  *blockio.Probe
	runq   *runqueue.Probe
	pf     *pagefault.Probe
	jvm    *probe.Probe
}

func startProbes(logger *slog.Logger, cgRel string) (ps *probeSet, err error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("memlock: %w", err)
	}
	ps = &probeSet{logger: logger}
	defer func() {
		if err != nil {
			ps.close()
		}
	}()
	tg := []targets.Target{{Name: targetName, Cgroup: cgRel}}
	if ps.block, err = blockio.New(logger, blockio.Config{BucketsPerOctave: 4}); err != nil {
		return nil, fmt.Errorf("block I/O probe: %w", err)
	}
	if ps.runq, err = runqueue.New(logger, runqueue.Config{Targets: tg, Refresh: 500 * time.Millisecond}); err != nil {
		return nil, fmt.Errorf("run-queue probe: %w", err)
	}
	if !ps.runq.Attached() {
		return nil, errors.New("run-queue probe: BPF programs not attached (see the log)")
	}
	if ps.pf, err = pagefault.New(logger, pagefault.Config{Targets: tg, Refresh: 500 * time.Millisecond}); err != nil {
		return nil, fmt.Errorf("page-fault probe: %w", err)
	}
	// The JVM probe is started by the scenarios that run a JVM, as only
	// they need it and it needs java.
	return ps, nil
}

// startJVM starts the JVM probe when it is not running yet.
func (e *env) startJVM() error {
	if e.probes.jvm != nil {
		return nil
	}
	p, err := probe.New(e.probes.logger, probe.Config{Targets: []targets.Target{{Name: targetName, Cgroup: e.cgRel}},
		Scan: 500 * time.Millisecond, Thrash: DrillThrash})
	if err != nil {
		return fmt.Errorf("JVM probe: %w", err)
	}
	e.probes.jvm = p
	return nil
}

func (ps *probeSet) close() {
	for _, c := range []interface{ Close() error }{ps.block, ps.runq, ps.pf, ps.jvm} {
		if c != nil && !isNilProbe(c) {
			c.Close()
		}
	}
}

func isNilProbe(c interface{ Close() error }) bool {
	switch p := c.(type) {
	case *blockio.Probe:
		return p == nil
	case *runqueue.Probe:
		return p == nil
	case *pagefault.Probe:
		return p == nil
	case *probe.Probe:
		return p == nil
	}
	return false
}

// env is what the drills of one run share.
type env struct {
	sc           *scratch
	cgRel, cgDir string
	probes       *probeSet
}

// fault is one drill's fault, made and ready to start.
type fault struct {
	desc    string
	subject func() string             // where the diagnosis is expected (known once started, for a JVM)
	match   func(subject string) bool // nil: subject() exactly
	start   func() error              // the fault's onset
	forbid  []actuator.Kind           // kinds that must not enter on the subject
	also    []want                    // further diagnoses a mixed scenario must reach
	cleanup []func()                  // run in reverse order
}

// want is a further diagnosis a scenario expects.
type want struct {
	kind    actuator.Kind
	subject func() string
	forbid  []actuator.Kind // kinds that must not enter on the subject
}

// drills makes each drill's fault.
var drills = map[string]struct {
	expect actuator.Kind
	make   func(ctx context.Context, e *env, f *fault) error
}{
	"slow-disk":      {actuator.SlowDrive, slowDisk},
	"disk-overload":  {actuator.DiskOverload, diskOverload},
	"cpu-overload":   {actuator.CPUOverload, cpuOverload},
	"memory-stall":   {actuator.MemoryStall, memoryStall},
	"query-of-death": {actuator.QueryOfDeath, queryOfDeath},

	"healthy-busy": {"", healthyBusy},

	"overloaded-slow-disk":   {actuator.SlowDrive, overloadedSlowDisk},
	"slow-disk-cpu-overload": {actuator.SlowDrive, slowDiskCPUOverload},
}

// run runs one drill: makes the fault, starts it, steps the rules every
// Tick until the expected diagnosis enters, a forbidden one does, or the
// drill times out, then removes the fault.
func (e *env) run(ctx context.Context, o Options, name string) (r Result) {
	d := drills[name]
	began := time.Now()
	r = Result{Drill: name, Expected: d.expect, Entered: []string{}}
	f := &fault{}
	defer func() {
		// Whatever the drill started in the cgroup goes first: its
		// processes hold the devices open.
		if err := killCgroup(e.cgDir); err != nil && r.Error == "" {
			r.Passed, r.Error = false, err.Error()
		}
		for i := len(f.cleanup) - 1; i >= 0; i-- {
			f.cleanup[i]()
		}
		r.Took = time.Since(began)
		if o.Progress != nil && o.Overwrite {
			fmt.Fprint(o.Progress, "\r\033[K")
		}
	}()
	fail := func(format string, a ...any) Result {
		r.Passed, r.Error = false, fmt.Sprintf(format, a...)
		return r
	}
	progress := func(format string, a ...any) {
		if o.Progress == nil {
			return
		}
		line := fmt.Sprintf("nerve drill %s: "+format, append([]any{name}, a...)...)
		if o.Overwrite {
			fmt.Fprint(o.Progress, "\r\033[K"+line)
		} else {
			fmt.Fprintln(o.Progress, line)
		}
	}

	progress("setting up")
	if err := d.make(ctx, e, f); err != nil {
		return fail("setup: %v", err)
	}
	r.Fault = f.desc

	sampler := agent.NewSampler(agent.SamplerProbes{BlockIO: e.probes.block, RunQueue: e.probes.runq,
		PageFault: e.probes.pf, JVM: e.probes.jvm, Target: targetName})
	eng := diagnose.New(DrillGoals())
	acts := agent.ActionInfos(config.Default().Actuator)
	for i := range acts {
		acts[i].Available, acts[i].Why = true, ""
	}
	lad, err := ladder.New(ladder.Config{GlobalMode: actuator.Advise}, acts)
	if err != nil {
		return fail("ladder: %v", err)
	}

	// Two reads before the onset: the first lets the probes meet the
	// drill's device, the second is the baseline, so that the first window
	// starts at the onset and already counts the device.
	sampler.Sample(ctx, time.Now())
	select {
	case <-ctx.Done():
		return fail("interrupted")
	case <-time.After(500 * time.Millisecond):
	}
	sampler.Sample(ctx, time.Now())
	if err := f.start(); err != nil {
		return fail("start the fault: %v", err)
	}
	onset := time.Now()
	control := d.expect == ""
	waitingFor := string(d.expect)
	if control {
		waitingFor = fmt.Sprintf("no diagnosis for %v", controlFor)
	}
	for _, w := range f.also {
		r.AlsoExpected = append(r.AlsoExpected, fmt.Sprintf("%s on %s", w.kind, w.subject()))
		waitingFor += " and " + string(w.kind)
	}
	progress("%s: fault on, waiting for %s", f.desc, waitingFor)
	t := time.NewTicker(Tick)
	defer t.Stop()
	limit := drillTimeout
	if control {
		limit = controlFor
	}
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	reached := false                         // the main diagnosis
	alsoReached := make([]bool, len(f.also)) // by f.also's index
	done := func() bool { return reached && !slices.Contains(alsoReached, false) }
	for {
		select {
		case <-ctx.Done():
			return fail("interrupted")
		case <-timeout.C:
			r.Subject = f.subject()
			if control {
				r.Passed = true
				return r
			}
			if !reached {
				return fail("%s not diagnosed on %s within %v of the fault's onset", d.expect, r.Subject, drillTimeout)
			}
			return fail("not every diagnosis reached within %v of the fault's onset: want %v, reached %v", drillTimeout, r.AlsoExpected, r.AlsoReached)
		case now := <-t.C:
			s := sampler.Sample(ctx, now)
			o.Logger.Debug("sample", "drill", name, "since_onset", now.Sub(onset), "devices", s.Devices,
				"runqueue_p99", s.RunQueueP99, "pagefault_stall_p99", s.PageFaultStallP99, "jvms", s.JVMs)
			subject := f.subject()
			r.Subject = subject
			matches := f.match
			if matches == nil {
				matches = func(s string) bool { return s == subject }
			}
			for _, c := range eng.Step(s) {
				if !c.Entered {
					continue
				}
				dg := c.Diagnosis
				entered := fmt.Sprintf("%s on %s", dg.Kind, dg.Subject)
				r.Entered = append(r.Entered, entered)
				if control {
					r.Reached, r.Subject = dg.Kind, dg.Subject
					return fail("%s entered: a healthy machine must get no diagnosis at all", entered)
				}
				for i, w := range f.also {
					if dg.Subject != w.subject() {
						continue
					}
					if slices.Contains(w.forbid, dg.Kind) {
						return fail("%s entered: nerve would take the wrong action", entered)
					}
					if dg.Kind == w.kind && !alsoReached[i] {
						alsoReached[i] = true
						r.AlsoReached = append(r.AlsoReached, entered)
					}
				}
				if !matches(dg.Subject) {
					continue // the rest of the node: not the drill's business
				}
				if slices.Contains(f.forbid, dg.Kind) {
					r.Reached, r.Subject = dg.Kind, dg.Subject
					return fail("%s entered on %s: nerve would take the wrong action", dg.Kind, dg.Subject)
				}
				if dg.Kind != d.expect || reached {
					continue
				}
				reached = true
				r.Reached, r.Subject = dg.Kind, dg.Subject
				plan, err := lad.Decide(dg, now)
				r.Plan = &plan
				r.Action, r.Rung, r.Mode = plan.Action.Name, plan.Rung, plan.Mode
				if err != nil {
					return fail("ladder: %v", err)
				}
			}
			if !control && done() {
				r.TimeToDetect = now.Sub(onset)
				r.Seconds = r.TimeToDetect.Seconds()
				r.Passed = true
				return r
			}
			seen := "nothing yet"
			if len(r.Entered) > 0 {
				seen = r.Entered[len(r.Entered)-1]
			}
			progress("%s: %4.0fs since onset, waiting for %s; seen: %s", f.desc, now.Sub(onset).Seconds(), waitingFor, seen)
		}
	}
}
