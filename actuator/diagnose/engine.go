package diagnose

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
)

// Node is the subject of the node-wide rules (cpu_overload, memory_stall).
const Node = "node"

// Change is a rule that entered, with the evidence that made it enter, or
// that cleared, with the evidence that cleared it. Diagnosis.Since is when
// the rule entered, in both.
type Change struct {
	Entered   bool
	Diagnosis actuator.Diagnosis
}

// Engine is the rules' state. It is not safe for concurrent use: one
// goroutine steps it.
type Engine struct {
	goals  goals.Goals
	states map[key]*state // only rules that hold or are on their way to
}

type key struct {
	kind    actuator.Kind
	subject string
}

// state is one rule for one subject.
type state struct {
	active bool
	// running says a run towards the other side has started at run: above
	// enter while inactive, below exit while active.
	running  bool
	run      time.Time
	failures int // failed_drive: consecutive canary failures
	diag     actuator.Diagnosis
}

// New returns an engine with nothing active, judging by g. g should have
// passed Validate.
func New(g goals.Goals) *Engine {
	return &Engine{goals: g, states: map[key]*state{}}
}

// SetGoals changes the goals from the next Step. What holds, and runs under
// way, are kept: a run is judged against the new for and clear_for.
func (e *Engine) SetGoals(g goals.Goals) { e.goals = g }

// Active returns the diagnoses that hold now, in actuator.Kinds order, then
// by subject.
func (e *Engine) Active() []actuator.Diagnosis {
	var out []actuator.Diagnosis
	for _, st := range e.states {
		if st.active {
			out = append(out, clone(st.diag))
		}
	}
	slices.SortFunc(out, func(a, b actuator.Diagnosis) int {
		return compare(a.Kind, a.Subject, b.Kind, b.Subject)
	})
	return out
}

// Step judges one Sample and returns what entered and what cleared, in the
// same order as Active. Call it once per sample, in time order.
func (e *Engine) Step(s actuator.Sample) []Change {
	g := e.goals
	var changes []Change
	add := func(c Change, ok bool) {
		if ok {
			changes = append(changes, c)
		}
	}

	slowEnter, _ := g.Disk.ServiceIdleP99.Levels()
	for name, d := range s.Devices {
		labels := "{device=" + name + "}"
		// The drive's own latency: service time at in-flight 0. A drive
		// that is never idle in the window (saturated: every request
		// issued behind others) is judged by its service time at 1-3 in
		// flight instead, so that a slow drive under heavy load is still
		// seen as slow, not as merely overloaded.
		idle, idleN, idleSignal := d.ServiceIdleP99, d.ServiceIdleN, "disk.service_idle"
		minReq := g.Disk.ServiceIdleP99.MinRequests
		if idleN < minReq && d.ServiceShallowN >= minReq {
			idle, idleN, idleSignal = d.ServiceShallowP99, d.ServiceShallowN, "disk.service_inflight_1to3"
		}
		if idleN < minReq {
			idle = math.NaN() // too few requests to judge the drive by
		}
		add(e.step(s, reading{
			key:    key{actuator.SlowDrive, name},
			signal: idleSignal + "_p99" + labels, unit: "seconds",
			value: idle, goal: limitsOf(g.Disk.ServiceIdleP99.Rule),
			extra: []actuator.Evidence{{Signal: idleSignal + "_requests" + labels, Value: float64(idleN),
				Unit: "count", Threshold: float64(minReq)}},
		}))

		// Queue time counts towards disk_overload only while the drive's
		// own latency is not above the slow_drive goal: queueing behind a
		// slow drive is the drive's fault, not the load's. A low queue
		// still counts towards clearing.
		r := reading{
			key:    key{actuator.DiskOverload, name},
			signal: "disk.queue_p99" + labels, unit: "seconds",
			value: d.QueueP99, goal: limitsOf(g.Disk.QueueP99),
		}
		if !math.IsNaN(idle) {
			r.extra = []actuator.Evidence{{Signal: idleSignal + "_p99" + labels, Value: idle, Unit: "seconds", Threshold: slowEnter}}
			if idle >= slowEnter && !(d.QueueP99 < r.goal.exit) {
				r.value = math.NaN()
			}
		}
		add(e.step(s, r))
	}

	add(e.step(s, reading{
		key:    key{actuator.CPUOverload, Node},
		signal: "cpu.runqueue_p99", unit: "seconds",
		value: s.RunQueueP99, goal: limitsOf(g.CPU.RunQueueP99),
	}))
	add(e.step(s, reading{
		key:    key{actuator.MemoryStall, Node},
		signal: "memory.pagefault_stall_p99", unit: "seconds",
		value: s.PageFaultStallP99, goal: limitsOf(g.Memory.PageFaultStallP99),
	}))

	present := map[string]bool{}
	for pid, j := range s.JVMs {
		subject := jvmSubject(pid, j.Label)
		present[subject] = true
		labels := "{pid=" + strconv.Itoa(pid) + "}"
		r := reading{
			key:    key{actuator.QueryOfDeath, subject},
			signal: "jvm.stopped_fraction" + labels, unit: "fraction",
			value: j.StoppedFraction, goal: limitsOf(g.JVM.StoppedFraction),
			now: j.ThrashOver,
		}
		if j.ThrashOver {
			r.extra = []actuator.Evidence{{Signal: "jvm.thrash_over" + labels, Value: 1, Unit: "bool", Threshold: 1}}
		}
		add(e.step(s, r))
	}
	if s.JVMs != nil {
		for k, st := range e.states {
			if k.kind == actuator.QueryOfDeath && !present[k.subject] {
				delete(e.states, k)
				if st.active {
					add(Change{Diagnosis: actuator.Diagnosis{Kind: k.kind, Subject: k.subject, Since: st.diag.Since,
						Context: maps.Clone(s.Context)}}, true)
				}
			}
		}
	}

	for mount, c := range s.Canaries {
		add(e.canary(s, mount, c))
	}

	slices.SortFunc(changes, func(a, b Change) int {
		return compare(a.Diagnosis.Kind, a.Diagnosis.Subject, b.Diagnosis.Kind, b.Diagnosis.Subject)
	})
	return changes
}

// limits is a goal with its thresholds in the Sample's units.
type limits struct {
	enter, exit  float64
	forD, clearD time.Duration
}

func limitsOf[T goals.Level](r goals.Rule[T]) limits {
	enter, exit := r.Levels()
	return limits{enter: enter, exit: exit, forD: r.For, clearD: r.ClearFor}
}

// reading is one rule's figure for one subject in one Sample.
type reading struct {
	key          key
	signal, unit string
	value        float64 // NaN: no evidence either way
	goal         limits
	now          bool                // enter at once, whatever value says
	extra        []actuator.Evidence // shown after the rule's own figure
}

// step moves one rule of one subject on by one reading.
func (e *Engine) step(s actuator.Sample, r reading) (Change, bool) {
	known := !math.IsNaN(r.value)
	if !known && !r.now {
		return Change{}, false // hold
	}
	above := r.now || r.value > r.goal.enter
	below := !r.now && r.value < r.goal.exit
	st := e.states[r.key]
	if st == nil {
		if !above {
			return Change{}, false
		}
		st = &state{}
		e.states[r.key] = st
	}

	if !st.active {
		if !above {
			delete(e.states, r.key) // the run is broken
			return Change{}, false
		}
		held := st.hold(s.At)
		if !r.now && held < r.goal.forD {
			return Change{}, false
		}
		var ev []actuator.Evidence
		if known {
			ev = append(ev, actuator.Evidence{Signal: r.signal, Value: r.value, Unit: r.unit, Threshold: r.goal.enter, For: held})
		}
		ev = append(ev, r.extra...)
		st.active, st.running = true, false
		st.diag = actuator.Diagnosis{Kind: r.key.kind, Subject: r.key.subject, Since: s.At, Evidence: ev, Context: maps.Clone(s.Context)}
		return Change{Entered: true, Diagnosis: clone(st.diag)}, true
	}

	if !below {
		st.running = false
		return Change{}, false
	}
	held := st.hold(s.At)
	if held < r.goal.clearD {
		return Change{}, false
	}
	delete(e.states, r.key)
	return cleared(st, s, actuator.Evidence{Signal: r.signal, Value: r.value, Unit: r.unit, Threshold: r.goal.exit, For: held}), true
}

// canary moves failed_drive of one mount on by one canary result.
func (e *Engine) canary(s actuator.Sample, mount string, c actuator.CanaryResult) (Change, bool) {
	k := key{actuator.FailedDrive, mount}
	want := e.goals.Canary.Failures
	signal := "canary.consecutive_failures{mount=" + mount + "}"
	st := e.states[k]
	if c.Err == "" && c.Latency < e.goals.Canary.Timeout {
		if st == nil {
			return Change{}, false
		}
		delete(e.states, k)
		if !st.active {
			return Change{}, false
		}
		return cleared(st, s, actuator.Evidence{Signal: signal, Value: 0, Unit: "count", Threshold: float64(want)}), true
	}
	if st == nil {
		st = &state{}
		e.states[k] = st
	}
	st.failures++
	held := st.hold(s.At)
	if st.active || st.failures < want {
		return Change{}, false
	}
	st.active = true
	st.diag = actuator.Diagnosis{Kind: k.kind, Subject: mount, Since: s.At, Context: maps.Clone(s.Context),
		Evidence: []actuator.Evidence{
			{Signal: signal, Value: float64(st.failures), Unit: "count", Threshold: float64(want), For: held},
			{Signal: "canary.latency{mount=" + mount + "}", Value: c.Latency.Seconds(), Unit: "seconds", Threshold: e.goals.Canary.Timeout.Seconds()},
		}}
	return Change{Entered: true, Diagnosis: clone(st.diag)}, true
}

// hold starts the run at at if none is under way and says how long it has
// lasted.
func (st *state) hold(at time.Time) time.Duration {
	if !st.running {
		st.running, st.run = true, at
	}
	return at.Sub(st.run)
}

func cleared(st *state, s actuator.Sample, ev actuator.Evidence) Change {
	return Change{Diagnosis: actuator.Diagnosis{Kind: st.diag.Kind, Subject: st.diag.Subject, Since: st.diag.Since,
		Evidence: []actuator.Evidence{ev}, Context: maps.Clone(s.Context)}}
}

func jvmSubject(pid int, label string) string {
	if label == "" {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("pid %d (%s)", pid, label)
}

// clone copies d so that callers cannot change the engine's state.
func clone(d actuator.Diagnosis) actuator.Diagnosis {
	d.Evidence = slices.Clone(d.Evidence)
	d.Context = maps.Clone(d.Context)
	return d
}

func compare(ka actuator.Kind, sa string, kb actuator.Kind, sb string) int {
	return cmp.Or(cmp.Compare(slices.Index(actuator.Kinds, ka), slices.Index(actuator.Kinds, kb)), cmp.Compare(sa, sb))
}
