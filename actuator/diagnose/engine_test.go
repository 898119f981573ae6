package diagnose

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
)

// The traces below run on the default goals (actuator/goals/default.yaml):
//   slow_drive     service_idle_p99 enter 50ms exit 30ms, min_requests 20
//   disk_overload  queue_p99        enter 100ms exit 50ms
//   cpu_overload   runqueue_p99     enter 10ms exit 5ms
//   memory_stall   pagefault_stall_p99 enter 20ms exit 10ms
//   query_of_death stopped_fraction enter 0.5 exit 0.2
// all with for 30s and clear_for 60s, and canary failures 3, timeout 5s.
// Samples come every 5s; a trace's times are seconds from t0.

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const tick = 5

var nan = math.NaN()

func ms(v float64) float64 { return v / 1000 }

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// every makes one sample per tick from from to to, both included.
func every(from, to int, f func(sec int) actuator.Sample) []actuator.Sample {
	var out []actuator.Sample
	for sec := from; sec <= to; sec += tick {
		out = append(out, f(sec))
	}
	return out
}

// disk is device sdb: its own latency and its requests at in-flight 0, and
// its queue time, in milliseconds.
func disk(idleMs float64, n uint64, queueMs float64) func(int) actuator.Sample {
	return func(sec int) actuator.Sample {
		return actuator.Sample{At: at(sec), RunQueueP99: nan, PageFaultStallP99: nan,
			Devices: map[string]actuator.DeviceSample{"sdb": {
				ServiceIdleP99: ms(idleMs), ServiceIdleN: n, ServiceP99: ms(idleMs + queueMs), QueueP99: ms(queueMs),
			}}}
	}
}

// saturated is sdb never idle: n requests issued at 1-3 in flight, with
// that service time, and its queue time, in milliseconds.
func saturated(shallowMs float64, n uint64, queueMs float64) func(int) actuator.Sample {
	return func(sec int) actuator.Sample {
		return actuator.Sample{At: at(sec), RunQueueP99: nan, PageFaultStallP99: nan,
			Devices: map[string]actuator.DeviceSample{"sdb": {
				ServiceIdleP99: nan, ServiceShallowP99: ms(shallowMs), ServiceShallowN: n,
				ServiceP99: ms(shallowMs + queueMs), QueueP99: ms(queueMs),
			}}}
	}
}

func node(runqMs, faultMs float64) func(int) actuator.Sample {
	return func(sec int) actuator.Sample {
		return actuator.Sample{At: at(sec), RunQueueP99: ms(runqMs), PageFaultStallP99: ms(faultMs)}
	}
}

func jvm(stopped float64, thrash bool) func(int) actuator.Sample {
	return func(sec int) actuator.Sample {
		return actuator.Sample{At: at(sec), RunQueueP99: nan, PageFaultStallP99: nan,
			JVMs: map[int]actuator.JVMSample{4242: {Label: "cassandra", StoppedFraction: stopped, ThrashOver: thrash}}}
	}
}

func canary(err string, latency time.Duration) func(int) actuator.Sample {
	return func(sec int) actuator.Sample {
		return actuator.Sample{At: at(sec), RunQueueP99: nan, PageFaultStallP99: nan,
			Canaries: map[string]actuator.CanaryResult{"/data1": {Mount: "/data1", Err: err, Latency: latency}}}
	}
}

// alternate makes samples from f and g, f at even ticks.
func alternate(from, to int, f, g func(int) actuator.Sample) []actuator.Sample {
	return every(from, to, func(sec int) actuator.Sample {
		if (sec/tick)%2 == 0 {
			return f(sec)
		}
		return g(sec)
	})
}

// show writes a change as "30s +slow_drive sdb".
func show(sec int, c Change) string {
	sign := "-"
	if c.Entered {
		sign = "+"
	}
	return fmt.Sprintf("%ds %s%s %s", sec, sign, c.Diagnosis.Kind, c.Diagnosis.Subject)
}

func TestTraces(t *testing.T) {
	tests := []struct {
		name    string
		samples []actuator.Sample
		// setGoals, when set, is applied before the sample at its second.
		setGoals map[int]func(*goals.Goals)
		want     []string // the changes, in order
		active   []actuator.Kind
	}{
		{
			name:    "heavy load on a healthy drive",
			samples: every(0, 300, disk(2, 200, 400)),
			want:    []string{"30s +disk_overload sdb"},
			active:  []actuator.Kind{actuator.DiskOverload},
		},
		{
			// Under heavy load few requests find the drive idle: the
			// drive cannot be judged, the load can.
			name:    "heavy load on a healthy drive, few idle requests",
			samples: every(0, 300, disk(70, 3, 400)),
			want:    []string{"30s +disk_overload sdb"},
			active:  []actuator.Kind{actuator.DiskOverload},
		},
		{
			name: "heavy load ends",
			samples: slices.Concat(
				every(0, 100, disk(2, 200, 400)),
				every(105, 300, disk(2, 200, 10))),
			want: []string{"30s +disk_overload sdb", "165s -disk_overload sdb"},
		},
		{
			name: "slow drive under light load, then replaced",
			samples: slices.Concat(
				every(0, 120, disk(80, 50, 1)),
				every(125, 300, disk(3, 50, 1))),
			want: []string{"30s +slow_drive sdb", "185s -slow_drive sdb"},
		},
		{
			// Queueing behind a slow drive is the drive's fault: the queue
			// does not count while the drive's own latency is over goal.
			name:    "slow drive with a long queue",
			samples: every(0, 300, disk(80, 50, 400)),
			want:    []string{"30s +slow_drive sdb"},
			active:  []actuator.Kind{actuator.SlowDrive},
		},
		{
			name: "overloaded drive turns slow: both",
			samples: slices.Concat(
				every(0, 60, disk(2, 200, 400)),
				every(65, 300, disk(80, 50, 400))),
			want:   []string{"30s +disk_overload sdb", "95s +slow_drive sdb"},
			active: []actuator.Kind{actuator.SlowDrive, actuator.DiskOverload},
		},
		{
			// The windows that see the drive idle show it slow; the others
			// cannot judge it and show the queue.
			name:    "slow drive under heavy load: both",
			samples: alternate(0, 300, disk(80, 50, 400), disk(nan, 3, 400)),
			want:    []string{"30s +slow_drive sdb", "35s +disk_overload sdb"},
			active:  []actuator.Kind{actuator.SlowDrive, actuator.DiskOverload},
		},
		{
			// Never idle: the drive is judged at 1-3 in flight, and its
			// queue is its own fault.
			name:    "saturated slow drive",
			samples: every(0, 300, saturated(80, 500, 400)),
			want:    []string{"30s +slow_drive sdb"},
			active:  []actuator.Kind{actuator.SlowDrive},
		},
		{
			name:    "saturated healthy drive",
			samples: every(0, 300, saturated(4, 500, 400)),
			want:    []string{"30s +disk_overload sdb"},
			active:  []actuator.Kind{actuator.DiskOverload},
		},
		{
			name:    "saturated, too few requests at 1-3 in flight either",
			samples: every(0, 300, saturated(80, 19, 400)),
			want:    []string{"30s +disk_overload sdb"},
			active:  []actuator.Kind{actuator.DiskOverload},
		},
		{
			name: "spike shorter than the window",
			samples: slices.Concat(
				every(0, 15, disk(2, 50, 1)),
				every(20, 40, disk(90, 50, 400)),
				every(45, 300, disk(2, 50, 1))),
		},
		{
			// Above enter for 20s, below exit for 20s, over and over: no
			// run is ever long enough to enter.
			name:    "fast oscillation across both thresholds",
			samples: every(0, 600, func(sec int) actuator.Sample { return disk(2, 50, []float64{150, 20}[(sec/20)%2])(sec) }),
		},
		{
			// After entering, the queue wanders between exit and enter for
			// an hour with a 10 minute period: it stays entered, once.
			name: "slow oscillation between exit and enter",
			samples: slices.Concat(
				every(0, 30, disk(2, 50, 200)),
				every(35, 3600, func(sec int) actuator.Sample {
					return disk(2, 50, 75+20*math.Sin(2*math.Pi*float64(sec)/600))(sec)
				})),
			want:   []string{"30s +disk_overload sdb"},
			active: []actuator.Kind{actuator.DiskOverload},
		},
		{
			name:    "too few idle requests never enter",
			samples: every(0, 300, disk(80, 19, 1)),
		},
		{
			name: "too few idle requests never clear",
			samples: slices.Concat(
				every(0, 30, disk(80, 50, 1)),
				every(35, 600, disk(1, 5, 1))),
			want:   []string{"30s +slow_drive sdb"},
			active: []actuator.Kind{actuator.SlowDrive},
		},
		{
			name: "too few idle requests hold a run",
			samples: slices.Concat(
				every(0, 10, disk(80, 50, 1)),
				every(15, 25, disk(1, 2, 1)),
				every(30, 30, disk(80, 50, 1))),
			want:   []string{"30s +slow_drive sdb"},
			active: []actuator.Kind{actuator.SlowDrive},
		},
		{
			name: "NaN windows hold",
			samples: slices.Concat(
				every(0, 10, node(20, nan)),
				every(15, 25, node(nan, nan)),
				every(30, 30, node(20, nan)),
				every(35, 900, node(nan, nan)),
				every(905, 1000, node(1, nan))),
			want: []string{"30s +cpu_overload node", "965s -cpu_overload node"},
		},
		{
			name:    "NaN only",
			samples: every(0, 300, disk(nan, 0, nan)),
		},
		{
			name: "memory stall",
			samples: slices.Concat(
				every(0, 100, node(1, 40)),
				every(105, 200, node(1, 15)), // between exit and enter
				every(205, 300, node(1, 2))),
			want: []string{"30s +memory_stall node", "265s -memory_stall node"},
		},
		{
			name:    "SetGoals mid-trace",
			samples: every(0, 300, node(8, 1)),
			setGoals: map[int]func(*goals.Goals){
				60: func(g *goals.Goals) {
					g.CPU.RunQueueP99.Enter, g.CPU.RunQueueP99.Exit = 5*time.Millisecond, 2*time.Millisecond
				},
				// 8ms is between the default exit and enter: it holds.
				120: func(g *goals.Goals) { *g = goals.Default() },
				// 8ms is now below exit, and clear_for 0s clears at once.
				200: func(g *goals.Goals) { g.CPU.RunQueueP99.Exit, g.CPU.RunQueueP99.ClearFor = 9*time.Millisecond, 0 },
			},
			want: []string{"90s +cpu_overload node", "200s -cpu_overload node"},
		},
		{
			name: "query of death by thrash",
			samples: slices.Concat(
				every(0, 20, jvm(0.1, false)),
				every(25, 25, jvm(0.1, true)),
				every(30, 200, jvm(0.05, false))),
			want: []string{"25s +query_of_death pid 4242 (cassandra)", "90s -query_of_death pid 4242 (cassandra)"},
		},
		{
			name: "query of death by thrash without a stopped fraction",
			samples: slices.Concat(
				every(0, 0, jvm(nan, true)),
				every(5, 200, jvm(nan, false))),
			want:   []string{"0s +query_of_death pid 4242 (cassandra)"},
			active: []actuator.Kind{actuator.QueryOfDeath},
		},
		{
			name: "query of death by stopped fraction",
			samples: slices.Concat(
				every(0, 60, jvm(0.7, false)),
				every(65, 200, jvm(0.3, false))),
			want:   []string{"30s +query_of_death pid 4242 (cassandra)"},
			active: []actuator.Kind{actuator.QueryOfDeath},
		},
		{
			name: "query of death clears when the JVM is gone",
			samples: slices.Concat(
				every(0, 30, jvm(0.7, false)),
				every(35, 35, func(sec int) actuator.Sample { return actuator.Sample{At: at(sec), JVMs: map[int]actuator.JVMSample{}} })),
			want: []string{"30s +query_of_death pid 4242 (cassandra)", "35s -query_of_death pid 4242 (cassandra)"},
		},
		{
			name: "failed drive after 3 failures, cleared by a success",
			samples: slices.Concat(
				every(0, 20, canary("read: input/output error", time.Millisecond)),
				every(25, 25, canary("", time.Millisecond))),
			want: []string{"10s +failed_drive /data1", "25s -failed_drive /data1"},
		},
		{
			name: "canary timeouts are failures",
			samples: slices.Concat(
				every(0, 10, canary("", 6*time.Second)),
				every(15, 100, func(sec int) actuator.Sample { return actuator.Sample{At: at(sec)} })),
			want:   []string{"10s +failed_drive /data1"},
			active: []actuator.Kind{actuator.FailedDrive},
		},
		{
			name: "failures that are not consecutive",
			samples: slices.Concat(
				every(0, 5, canary("EIO", 0)),
				every(10, 10, canary("", 0)),
				every(15, 20, canary("EIO", 0))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := goals.Default()
			e := New(g)
			var got []string
			for _, s := range tt.samples {
				sec := int(s.At.Sub(t0) / time.Second)
				if set := tt.setGoals[sec]; set != nil {
					set(&g)
					e.SetGoals(g)
				}
				for _, c := range e.Step(s) {
					got = append(got, show(sec, c))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("changes:\ngot  %q\nwant %q", got, tt.want)
			}
			var kinds []actuator.Kind
			for _, d := range e.Active() {
				kinds = append(kinds, d.Kind)
			}
			if !slices.Equal(kinds, tt.active) {
				t.Errorf("Active() = %v, want %v", kinds, tt.active)
			}
		})
	}
}

func TestEvidence(t *testing.T) {
	e := New(goals.Default())
	var entered []Change
	for _, s := range every(0, 30, disk(80, 50, 1)) {
		s.Context = map[string]float64{"cpu_busy_fraction": 0.2}
		entered = append(entered, e.Step(s)...)
	}
	if len(entered) != 1 {
		t.Fatalf("got %d changes, want 1: %+v", len(entered), entered)
	}
	got := entered[0].Diagnosis
	want := actuator.Diagnosis{
		Kind: actuator.SlowDrive, Subject: "sdb", Since: at(30),
		Evidence: []actuator.Evidence{
			{Signal: "disk.service_idle_p99{device=sdb}", Value: 0.08, Unit: "seconds", Threshold: 0.05, For: 30 * time.Second},
			{Signal: "disk.service_idle_requests{device=sdb}", Value: 50, Unit: "count", Threshold: 20},
		},
		Context: map[string]float64{"cpu_busy_fraction": 0.2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entered:\ngot  %+v\nwant %+v", got, want)
	}
	if a := e.Active(); len(a) != 1 || fmt.Sprint(a[0]) != fmt.Sprint(want) {
		t.Errorf("Active() = %+v, want [%+v]", a, want)
	}
	// What callers get is theirs to change.
	e.Active()[0].Evidence[0].Value = 99
	if v := e.Active()[0].Evidence[0].Value; v != 0.08 {
		t.Errorf("Active() shares its evidence with the caller: %v", v)
	}
}

func TestOverloadEvidenceShowsTheDrive(t *testing.T) {
	e := New(goals.Default())
	var changes []Change
	for _, s := range every(0, 30, disk(2, 200, 400)) {
		changes = append(changes, e.Step(s)...)
	}
	if len(changes) != 1 {
		t.Fatalf("got %d changes, want 1", len(changes))
	}
	got := changes[0].Diagnosis.Evidence
	want := []actuator.Evidence{
		{Signal: "disk.queue_p99{device=sdb}", Value: 0.4, Unit: "seconds", Threshold: 0.1, For: 30 * time.Second},
		{Signal: "disk.service_idle_p99{device=sdb}", Value: 0.002, Unit: "seconds", Threshold: 0.05},
	}
	if !slices.Equal(got, want) {
		t.Errorf("evidence:\ngot  %+v\nwant %+v", got, want)
	}
}
