package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/actuator/report"
)

// slowDrive is a sample where sdb's own latency is 80 ms.
func slowDrive(at time.Time) actuator.Sample {
	return actuator.Sample{
		At: at,
		Devices: map[string]actuator.DeviceSample{
			"sdb": {ServiceIdleP99: 0.080, ServiceIdleN: 100, ServiceP99: 0.080, QueueP99: 0.001, IOPS: 50},
		},
		RunQueueP99: math.NaN(), PageFaultStallP99: math.NaN(), PageFaultStallSeconds: math.NaN(),
		Context: map[string]float64{"load1": 0.5},
	}
}

type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) step(name string) journal.Step {
	return journal.Step{Name: name, Do: func(context.Context) error {
		r.mu.Lock()
		r.ran = append(r.ran, name)
		r.mu.Unlock()
		return nil
	}}
}

func setup(t *testing.T, lock actuator.Lock, modes map[actuator.Rung]actuator.Mode) (*Controller, *recorder, *report.Store) {
	t.Helper()
	dir := t.TempDir()
	j, err := journal.Open(dir + "/journal")
	if err != nil {
		t.Fatal(err)
	}
	st, err := report.Open(dir+"/decisions", 100)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	transfer := Action{
		Info: ladder.ActionInfo{Name: "transfer-and-exit", Rung: actuator.TransferAndExit,
			Clears: []actuator.Kind{actuator.SlowDrive, actuator.FailedDrive}, Available: true},
		Steps: func(d actuator.Diagnosis, g *actuator.Grant, id string) []journal.Step {
			return []journal.Step{rec.step("decommission"), rec.step("stop")}
		},
	}
	c, err := New(Config{
		Node: "n1", Goals: goals.Default(), Ladder: ladder.Config{Modes: modes},
		Actions: []Action{transfer}, Lock: lock, Journal: j, Reports: st,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec, st
}

func run(c *Controller, from time.Time, d time.Duration) []report.Decision {
	var out []report.Decision
	for at := from; at.Before(from.Add(d)); at = at.Add(5 * time.Second) {
		out = append(out, c.Tick(context.Background(), slowDrive(at))...)
	}
	return out
}

// By default the rungs that stop the database only advise: the decision is
// explained and nothing runs.
func TestAdviseByDefault(t *testing.T) {
	c, rec, st := setup(t, &ladder.LocalLock{}, nil)
	decs := run(c, time.Unix(1e9, 0), 2*time.Minute)
	if len(decs) != 1 {
		t.Fatalf("%d decisions reported, want 1 (changes only)", len(decs))
	}
	d := decs[0]
	if d.Plan.Diagnosis.Kind != actuator.SlowDrive || !strings.HasPrefix(d.Outcome, "advised") {
		t.Errorf("decision %s: %s, want an advised slow_drive", d.Plan.Diagnosis.Kind, d.Outcome)
	}
	if len(rec.ran) != 0 {
		t.Errorf("steps ran in advise mode: %v", rec.ran)
	}
	if got, err := st.List(time.Time{}, 0); err != nil || len(got) != 1 {
		t.Errorf("stored decisions: %d, %v", len(got), err)
	}
	if txt := report.Text(d); !strings.Contains(txt, "slow_drive") || !strings.Contains(txt, "sdb") {
		t.Errorf("report text lacks the diagnosis:\n%s", txt)
	}
	want := `# HELP nerve_diagnosis Whether a diagnosis holds now (1) on at least one subject, or not (0).
# TYPE nerve_diagnosis gauge
nerve_diagnosis{kind="cpu_overload"} 0
nerve_diagnosis{kind="disk_overload"} 0
nerve_diagnosis{kind="failed_drive"} 0
nerve_diagnosis{kind="memory_stall"} 0
nerve_diagnosis{kind="query_of_death"} 0
nerve_diagnosis{kind="slow_drive"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nerve_diagnosis"); err != nil {
		t.Error(err)
	}
}

// The counters an operator alerts on exist at 0 before the first decision,
// so increase() over them sees that decision too; the first advice counts.
func TestActionCountersStartAtZero(t *testing.T) {
	c, _, _ := setup(t, &ladder.LocalLock{}, nil)
	head := `# HELP nerve_actions_total Decisions by action and result: done, failed, refused, advised, observed, no action left. Each configured action's series exist from the start, at 0.
# TYPE nerve_actions_total counter
`
	series := func(advised int) string {
		return fmt.Sprintf(`nerve_actions_total{action="none",result="no action left"} 0
nerve_actions_total{action="transfer-and-exit",result="advised"} %d
nerve_actions_total{action="transfer-and-exit",result="done"} 0
nerve_actions_total{action="transfer-and-exit",result="failed"} 0
nerve_actions_total{action="transfer-and-exit",result="observed"} 0
nerve_actions_total{action="transfer-and-exit",result="refused"} 0
`, advised)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+series(0)), "nerve_actions_total"); err != nil {
		t.Error(err)
	}
	run(c, time.Unix(1e9, 0), 2*time.Minute)
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+series(1)), "nerve_actions_total"); err != nil {
		t.Error(err)
	}
}

// In enforce mode with the rack lock granted, the action runs once, with
// the fencing token in its report.
func TestEnforceWithLock(t *testing.T) {
	all := map[actuator.Rung]actuator.Mode{1: actuator.Enforce, 2: actuator.Enforce, 3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Enforce}
	c, rec, _ := setup(t, &ladder.LocalLock{}, all)
	decs := run(c, time.Unix(1e9, 0), 2*time.Minute)
	if len(decs) != 1 || decs[0].Outcome != "done" {
		t.Fatalf("decisions %+v, want one done", decs)
	}
	if decs[0].LockToken == 0 {
		t.Error("no fencing token in the report of an action that stops the database")
	}
	if strings.Join(rec.ran, ",") != "decommission,stop" {
		t.Errorf("steps ran %v", rec.ran)
	}
	if len(decs[0].Steps) != 3 || decs[0].Steps[0].Name != "validate rack lock" {
		t.Errorf("report steps %+v, want the lock check first", decs[0].Steps)
	}
}

// Without a manager the lock is denied: the decision says so and nothing runs.
func TestLockDenied(t *testing.T) {
	all := map[actuator.Rung]actuator.Mode{1: actuator.Enforce, 2: actuator.Enforce, 3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Enforce}
	c, rec, _ := setup(t, ladder.DenyLock{}, all)
	decs := run(c, time.Unix(1e9, 0), 2*time.Minute)
	if len(decs) == 0 || !strings.Contains(decs[0].Outcome, "refused") || !strings.Contains(decs[0].Outcome, actuator.ErrLockDenied.Error()) {
		t.Fatalf("decisions %+v, want refused for the lock", decs)
	}
	if len(rec.ran) != 0 {
		t.Errorf("steps ran without the lock: %v", rec.ran)
	}
}

// An action interrupted mid-way is finished on restart, without repeating
// the steps already done.
func TestResume(t *testing.T) {
	all := map[actuator.Rung]actuator.Mode{1: actuator.Enforce, 2: actuator.Enforce, 3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Enforce}
	c, rec, st := setup(t, &ladder.LocalLock{}, all)
	// Make the second step hang until its context ends, as a crash would
	// leave it: started, not done.
	ctx, cancel := context.WithCancel(context.Background())
	c.actions["transfer-and-exit"] = Action{Info: c.actions["transfer-and-exit"].Info,
		Steps: func(d actuator.Diagnosis, g *actuator.Grant, id string) []journal.Step {
			return []journal.Step{rec.step("decommission"), {Name: "stop", Do: func(ctx context.Context) error {
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}}}
		}}
	for at := time.Unix(1e9, 0); ctx.Err() == nil; at = at.Add(5 * time.Second) {
		c.Tick(ctx, slowDrive(at))
	}
	c.actions["transfer-and-exit"] = Action{Info: c.actions["transfer-and-exit"].Info,
		Steps: func(d actuator.Diagnosis, g *actuator.Grant, id string) []journal.Step {
			return []journal.Step{rec.step("decommission"), rec.step("stop")}
		}}
	if err := c.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rec.ran, ",") != "decommission,stop" {
		t.Errorf("steps ran %v, want each once", rec.ran)
	}
	decs, _ := st.List(time.Time{}, 0)
	if len(decs) == 0 || decs[0].Outcome != "done" {
		t.Errorf("latest decision %+v, want done after resume", decs)
	}
}

func TestBadConfig(t *testing.T) {
	_, err := New(Config{})
	if err == nil || !errors.Is(err, err) {
		t.Fatal("no error for an empty config")
	}
}
