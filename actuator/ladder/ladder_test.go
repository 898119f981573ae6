package ladder

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
)

var testActions = []ActionInfo{
	{Name: "exit-node", Rung: actuator.ExitWithoutTrans, Clears: actuator.Kinds, Available: true},
	{Name: "throttle-compaction", Rung: actuator.LiveControl, Clears: []actuator.Kind{actuator.DiskOverload, actuator.CPUOverload}, Available: true},
	{Name: "restart-sidecar", Rung: actuator.RestartSidecar, Clears: []actuator.Kind{actuator.CPUOverload, actuator.MemoryStall}, Available: true},
	{Name: "restart-cassandra", Rung: actuator.RestartDatabase, Clears: []actuator.Kind{actuator.CPUOverload, actuator.MemoryStall, actuator.QueryOfDeath}, Available: true},
	{Name: "replace-node", Rung: actuator.TransferAndExit, Clears: []actuator.Kind{actuator.SlowDrive, actuator.FailedDrive}, Available: false, Why: "no spare node"},
}

var t0 = time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)

// event is one Decide at t0+at, for a diagnosis entered at t0+since, and a
// Record of the plan unless it was refused.
type event struct {
	at, since time.Duration
	kind      actuator.Kind
	subject   string // default "node"

	wantAction string
	wantAct    bool
	wantErr    error
	wantLock   bool
	wantWhy    string // in the chosen (or last) Considered entry
}

func TestDecide(t *testing.T) {
	allEnforce := map[actuator.Rung]actuator.Mode{3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Enforce}
	tests := []struct {
		name   string
		cfg    Config
		events []event
	}{{
		name: "lowest rung that can clear",
		events: []event{
			{kind: actuator.CPUOverload, subject: "a", wantAction: "throttle-compaction", wantAct: true, wantWhy: "lowest rung"},
			{kind: actuator.MemoryStall, subject: "b", wantAction: "restart-sidecar", wantAct: true},
			{kind: actuator.QueryOfDeath, subject: "c", wantAction: "restart-cassandra", wantLock: true, wantWhy: "mode advise: not acting"},
			// replace-node is not available: straight to rung 5.
			{kind: actuator.SlowDrive, subject: "d", wantAction: "exit-node", wantLock: true},
		},
	}, {
		name: "escalation after EscalateAfter, one rung at a time",
		events: []event{
			{at: 0, kind: actuator.CPUOverload, wantAction: "throttle-compaction", wantAct: true},
			{at: 9 * time.Minute, kind: actuator.CPUOverload, wantAction: "throttle-compaction", wantErr: ErrWaiting, wantWhy: "before the ladder goes up"},
			{at: 10 * time.Minute, kind: actuator.CPUOverload, wantAction: "restart-sidecar", wantAct: true, wantWhy: "escalated"},
			{at: 20 * time.Minute, kind: actuator.CPUOverload, wantAction: "restart-cassandra", wantLock: true},
			// Advice climbs too; rung 4 cannot clear cpu_overload.
			{at: 30 * time.Minute, kind: actuator.CPUOverload, wantAction: "exit-node", wantLock: true},
			{at: 40 * time.Minute, kind: actuator.CPUOverload, wantErr: ErrNoAction},
			// Another subject has its own ladder.
			{at: 40 * time.Minute, since: 40 * time.Minute, kind: actuator.CPUOverload, subject: "pid 7", wantAction: "throttle-compaction", wantAct: true},
		},
	}, {
		name: "a diagnosis back after clearing starts at the bottom",
		cfg:  Config{EscalateAfter: 5 * time.Minute},
		events: []event{
			{at: 0, kind: actuator.MemoryStall, wantAction: "restart-sidecar", wantAct: true},
			{at: 5 * time.Minute, since: 0, kind: actuator.MemoryStall, wantAction: "restart-cassandra", wantLock: true},
			{at: 60 * time.Minute, since: 58 * time.Minute, kind: actuator.MemoryStall, wantAction: "restart-sidecar", wantAct: true},
		},
	}, {
		name: "rate limit per action",
		cfg:  Config{RateLimits: map[string]RateLimit{"throttle-compaction": {Max: 2, Per: time.Hour}}},
		events: []event{
			{at: 0, since: 0, kind: actuator.DiskOverload, wantAction: "throttle-compaction", wantAct: true},
			{at: 1 * time.Minute, since: 1 * time.Minute, kind: actuator.DiskOverload, wantAction: "throttle-compaction", wantAct: true},
			{at: 2 * time.Minute, since: 2 * time.Minute, kind: actuator.DiskOverload, wantAction: "throttle-compaction", wantErr: actuator.ErrRateLimited, wantWhy: "2 in the last 1h0m0s"},
			{at: 59 * time.Minute, since: 59 * time.Minute, kind: actuator.DiskOverload, wantAction: "throttle-compaction", wantErr: actuator.ErrRateLimited},
			{at: 61 * time.Minute, since: 61 * time.Minute, kind: actuator.DiskOverload, wantAction: "throttle-compaction", wantAct: true},
		},
	}, {
		name: "crash-loop guard trips after N restarts an hour and holds for the hour",
		cfg:  Config{Modes: allEnforce, MaxDatabaseRestartsPerHour: 2, DefaultRateLimit: RateLimit{Max: 100, Per: time.Hour}},
		events: []event{
			{at: 0, since: 0, kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantAct: true, wantLock: true},
			{at: 10 * time.Minute, since: 10 * time.Minute, kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantAct: true, wantLock: true},
			{at: 20 * time.Minute, since: 20 * time.Minute, kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantLock: true, wantErr: actuator.ErrCrashLoop},
			// Tripped at 10m: still at 69m although the first restart has aged out.
			{at: 69 * time.Minute, since: 69 * time.Minute, kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantLock: true, wantErr: actuator.ErrCrashLoop},
			// Rungs that keep the database up are not guarded.
			{at: 69 * time.Minute, since: 69 * time.Minute, kind: actuator.CPUOverload, wantAction: "throttle-compaction", wantAct: true},
			{at: 70 * time.Minute, since: 70 * time.Minute, kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantAct: true, wantLock: true},
		},
	}, {
		name: "global observe explains without acting",
		cfg:  Config{GlobalMode: actuator.Observe},
		events: []event{
			{kind: actuator.MemoryStall, wantAction: "restart-sidecar", wantWhy: "mode observe: not acting"},
		},
	}, {
		name: "global advise caps enforce",
		cfg:  Config{GlobalMode: actuator.Advise, Modes: allEnforce},
		events: []event{
			{kind: actuator.CPUOverload, wantAction: "throttle-compaction", wantWhy: "mode advise"},
			{kind: actuator.QueryOfDeath, wantAction: "restart-cassandra", wantLock: true, wantWhy: "mode advise"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg, testActions)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range tt.events {
				if e.subject == "" {
					e.subject = "node"
				}
				d := actuator.Diagnosis{Kind: e.kind, Subject: e.subject, Since: t0.Add(e.since)}
				now := t0.Add(e.at)
				p, err := l.Decide(d, now)
				if !errors.Is(err, e.wantErr) || (err != nil) != (e.wantErr != nil) {
					t.Fatalf("event %d: Decide error %v, want %v", i, err, e.wantErr)
				}
				if p.Action.Name != e.wantAction || p.Act != e.wantAct || p.NeedsLock != e.wantLock {
					t.Errorf("event %d: action %q act %v lock %v, want %q %v %v\n%+v",
						i, p.Action.Name, p.Act, p.NeedsLock, e.wantAction, e.wantAct, e.wantLock, p.Considered)
				}
				if len(p.Considered) == 0 {
					t.Fatalf("event %d: plan explains nothing", i)
				}
				if last := p.Considered[len(p.Considered)-1]; !strings.Contains(last.Why, e.wantWhy) {
					t.Errorf("event %d: last considered %q, want it to say %q", i, last.Why, e.wantWhy)
				}
				if p.Act && p.Mode != actuator.Enforce {
					t.Errorf("event %d: acts in mode %s", i, p.Mode)
				}
				l.Record(p, now, err)
			}
		})
	}
}

// The plan says why each lower rung was passed over.
func TestConsideredExplainsLowerRungs(t *testing.T) {
	l, err := New(Config{}, testActions)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Decide(actuator.Diagnosis{Kind: actuator.SlowDrive, Subject: "sdb", Since: t0}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Considered{
		{Rung: 1, Action: "throttle-compaction", Why: "cannot clear slow_drive"},
		{Rung: 2, Action: "restart-sidecar", Why: "cannot clear slow_drive"},
		{Rung: 3, Action: "restart-cassandra", Why: "cannot clear slow_drive"},
		{Rung: 4, Action: "replace-node", Why: "not available: no spare node"},
		{Rung: 5, Action: "exit-node", Chosen: true, Why: "lowest rung that can clear slow_drive; mode advise: not acting"},
	}
	if len(p.Considered) != len(want) {
		t.Fatalf("considered %+v, want %+v", p.Considered, want)
	}
	for i := range want {
		if p.Considered[i] != want[i] {
			t.Errorf("considered[%d] = %+v, want %+v", i, p.Considered[i], want[i])
		}
	}
}

// Recording a waiting or refused plan as if it ran must not restart the
// escalation clock nor count against the guards.
func TestRecordIgnoresPlansThatDidNotRun(t *testing.T) {
	l, err := New(Config{RateLimits: map[string]RateLimit{"throttle-compaction": {Max: 1, Per: time.Hour}}}, testActions)
	if err != nil {
		t.Fatal(err)
	}
	d := actuator.Diagnosis{Kind: actuator.CPUOverload, Subject: "node", Since: t0}
	p, _ := l.Decide(d, t0)
	l.Record(p, t0, nil)
	for _, m := range []time.Duration{1, 5, 9} {
		now := t0.Add(m * time.Minute)
		p, err := l.Decide(d, now)
		if !errors.Is(err, ErrWaiting) {
			t.Fatalf("at +%dm: %v, want ErrWaiting", m, err)
		}
		l.Record(p, now, nil)
	}
	if p, err := l.Decide(d, t0.Add(10*time.Minute)); err != nil || p.Action.Name != "restart-sidecar" {
		t.Errorf("at +10m: %q, %v; want restart-sidecar", p.Action.Name, err)
	}
	// A rate-limited plan recorded with a nil outcome does not count.
	d2 := actuator.Diagnosis{Kind: actuator.DiskOverload, Subject: "sdc", Since: t0.Add(30 * time.Minute)}
	p, err = l.Decide(d2, t0.Add(30*time.Minute))
	if !errors.Is(err, actuator.ErrRateLimited) {
		t.Fatalf("second throttle within the hour: %v, want ErrRateLimited", err)
	}
	l.Record(p, t0.Add(30*time.Minute), nil)
	if _, err := l.Decide(d2, t0.Add(31*time.Minute)); !errors.Is(err, actuator.ErrRateLimited) {
		t.Errorf("after recording a refused plan: %v, want still ErrRateLimited, not waiting", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		actions []ActionInfo
		want    string
	}{
		{"unknown global mode", Config{GlobalMode: "yolo"}, testActions, `GlobalMode: unknown mode "yolo"`},
		{"unknown rung", Config{Modes: map[actuator.Rung]actuator.Mode{6: actuator.Advise}}, testActions, "Modes[6]: no such rung"},
		{"higher rung more permissive", Config{Modes: map[actuator.Rung]actuator.Mode{1: actuator.Advise}}, testActions, "Modes[2]=enforce is more permissive than Modes[1]=advise"},
		{"negative escalation", Config{EscalateAfter: -time.Second}, testActions, "EscalateAfter"},
		{"rate limit for no action", Config{RateLimits: map[string]RateLimit{"reboot": {1, time.Hour}}}, testActions, `RateLimits["reboot"]: no such action`},
		{"zero rate limit", Config{RateLimits: map[string]RateLimit{"exit-node": {0, time.Hour}}}, testActions, `RateLimits["exit-node"]: Max 0`},
		{"negative restarts", Config{MaxDatabaseRestartsPerHour: -1}, testActions, "MaxDatabaseRestartsPerHour"},
		{"duplicate action", Config{}, []ActionInfo{{Name: "a", Rung: 1}, {Name: "a", Rung: 2}}, `actions[1].Name: "a" also at actions[0]`},
		{"bad rung", Config{}, []ActionInfo{{Name: "a", Rung: 0}}, "actions[0].Rung: 0"},
		{"bad kind", Config{}, []ActionInfo{{Name: "a", Rung: 1, Clears: []actuator.Kind{"sadness"}}}, `actions[0].Clears: unknown kind "sadness"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.actions)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultModes(t *testing.T) {
	l, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[actuator.Rung]actuator.Mode{1: actuator.Enforce, 2: actuator.Enforce, 3: actuator.Advise, 4: actuator.Advise, 5: actuator.Advise}
	for r, m := range want {
		if got := l.Mode(r); got != m {
			t.Errorf("Mode(%d) = %s, want %s", r, got, m)
		}
	}
}
