package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/actions"
	"github.com/nervehq/nerve/actuator/controller"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/config"
)

// actuatorRun is the running actuator: the controller, its reports, and
// what feeds it.
type actuatorRun struct {
	ctl     *controller.Controller
	reports *report.Store
	sampler *sampler
	tick    time.Duration
	goals   string // goals file, "" for the built-in goals
	lock    actuator.Lock
	logger  *slog.Logger
	// Goals fetched from the manager; used only by run's goroutine.
	goalsAt  time.Time
	goalsDoc string
}

// healthReporter is a rack lock that frees this node's suspect grants when
// told the node is healthy (the manager's).
type healthReporter interface {
	ReportHealthy(ctx context.Context) error
}

// loadGoals reads the goals file, or the built-in goals when none is set.
func loadGoals(path string) (goals.Goals, error) {
	if path == "" {
		return goals.Default(), nil
	}
	return goals.Load(path)
}

// CheckGoals loads the goals file cfg names, when the actuator or the
// flight recorder (whose thresholds follow the goals) will read it, so that
// a file that does not load or validate stops the agent before any probe
// is loaded, as a configuration error does. The error names the key.
func CheckGoals(cfg *config.Config) error {
	if cfg.Actuator.GoalsFile == "" || !cfg.Actuator.Enabled && !cfg.Flight.Enabled {
		return nil
	}
	if _, err := goals.Load(cfg.Actuator.GoalsFile); err != nil {
		return fmt.Errorf("actuator.goals_file: %w", err)
	}
	return nil
}

// newActuator builds the controller from the configuration and the started
// probes, and resumes any action a crash interrupted.
func (a *agent) newActuator(ctx context.Context, cfg *config.Config) (*actuatorRun, error) {
	ac := cfg.Actuator
	g, err := loadGoals(ac.GoalsFile)
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(filepath.Join(ac.StateDir, "journal"))
	if err != nil {
		return nil, fmt.Errorf("actuator state: %w", err)
	}
	st, err := report.Open(filepath.Join(ac.StateDir, "decisions"), report.DefaultKeep, report.WithLogger(a.logger))
	if err != nil {
		return nil, fmt.Errorf("actuator state: %w", err)
	}
	var lock actuator.Lock = ladder.DenyLock{}
	switch ac.Lock {
	case "local":
		lock = &ladder.LocalLock{}
	case "manager":
		ml, err := NewManagerLock(cfg.Manager, a.logger.With("component", "rack-lock"))
		if err != nil {
			return nil, fmt.Errorf("rack lock: %w", err)
		}
		lock = ml
	}
	modes := map[actuator.Rung]actuator.Mode{}
	for r, m := range ac.Rungs {
		modes[actuator.Rung(r)] = actuator.Mode(m)
	}
	host, _ := os.Hostname()
	ccfg := controller.Config{
		Node: host, Goals: g, Lock: lock, Journal: j, Reports: st, Logger: a.logger.With("component", "actuator"),
		Ladder: ladder.Config{
			Modes: modes, GlobalMode: actuator.Mode(ac.Mode), EscalateAfter: ac.EscalateAfter,
			MaxDatabaseRestartsPerHour: ac.MaxDatabaseRestartsPerHour,
		},
		Actions: withLiveness(catalog(ac), ac.CQLHosts),
	}
	if ac.WebhookURL != "" {
		hook := &actions.Webhook{URL: ac.WebhookURL, MinInterval: 10 * time.Minute}
		ccfg.Alert = func(ctx context.Context, d report.Decision) {
			err := hook.Send(ctx, actions.Alert{
				DecisionID: d.ID, Node: host, Kind: d.Plan.Diagnosis.Kind, Subject: d.Plan.Diagnosis.Subject,
				Summary: d.Outcome, Evidence: d.Plan.Diagnosis.Evidence,
			})
			if err != nil {
				a.logger.Warn("alert", "id", d.ID, "err", err)
			}
		}
	}
	if ml, ok := lock.(*ManagerLock); ok {
		ccfg.Checkpoint = ml.Checkpoint
		alert := ccfg.Alert
		ccfg.Alert = func(ctx context.Context, d report.Decision) {
			if alert != nil {
				alert(ctx, d)
			}
			if b, err := json.Marshal(d); err == nil {
				if err := ml.Publish(ctx, d.ID, b); err != nil {
					a.logger.Warn("publish decision to the manager", "id", d.ID, "err", err)
				}
			}
		}
	}
	if ccfg.Bundle, err = a.flight.openBundles(filepath.Join(ac.StateDir, "incidents")); err != nil {
		return nil, fmt.Errorf("actuator state: %w", err)
	}
	ctl, err := controller.New(ccfg)
	if err != nil {
		return nil, err
	}
	if err := ctl.Resume(ctx); err != nil {
		a.logger.Error("resuming interrupted actions", "err", err)
	}
	return &actuatorRun{
		ctl: ctl, reports: st, tick: ac.Tick, goals: ac.GoalsFile, lock: lock, logger: a.logger,
		sampler: newSampler(a.probes.probes, ac.Target, ac.DataMounts, g.Canary.Timeout),
	}, nil
}

// healthyEvery is how often a node with nothing diagnosed tells the
// manager it is healthy, which frees grants of its whose lease lapsed.
const healthyEvery = 30 * time.Second

// run samples and decides every tick until ctx ends.
func (r *actuatorRun) run(ctx context.Context) {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	var lastHealthy time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.ctl.Tick(ctx, r.sampler.sample(ctx, now))
			r.fetchGoals(ctx, now)
			if hr, ok := r.lock.(healthReporter); ok && len(r.ctl.Active()) == 0 && now.Sub(lastHealthy) >= healthyEvery {
				if err := hr.ReportHealthy(ctx); err == nil {
					lastHealthy = now
				}
			}
		}
	}
}

// goalsEvery is how often goals are fetched from the manager.
const goalsEvery = 30 * time.Second

// fetchGoals takes the goals the manager merged for this node, when a
// manager is in use and its document changed. A document that does not
// parse is logged and the goals in force stay; an empty one leaves the
// local goals.
func (r *actuatorRun) fetchGoals(ctx context.Context, now time.Time) {
	ml, ok := r.lock.(*ManagerLock)
	if !ok || now.Sub(r.goalsAt) < goalsEvery {
		return
	}
	r.goalsAt = now
	doc, err := ml.Goals(ctx)
	if err != nil || doc == r.goalsDoc {
		return
	}
	r.goalsDoc = doc
	if doc == "" {
		return
	}
	g, err := goals.Parse([]byte(doc))
	if err != nil {
		r.logger.Error("goals from the manager refused; keeping the goals in force", "err", err)
		return
	}
	r.ctl.SetGoals(g)
	r.logger.Info("goals from the manager in force")
}

// close lets go of the rack lock client.
func (r *actuatorRun) close() {
	if c, ok := r.lock.(interface{ Close() error }); ok {
		c.Close()
	}
}

// catalog is the action ladder's actions as the configuration allows them.
// An action the configuration leaves out is listed as unavailable, with
// why, so that every decision can say what it would have needed.
func catalog(ac config.Actuator) []controller.Action {
	var out []controller.Action
	add := func(name string, rung actuator.Rung, clears []actuator.Kind, why string,
		steps func(actuator.Diagnosis, *actuator.Grant, string) []journal.Step) {
		out = append(out, controller.Action{
			Info:  ladder.ActionInfo{Name: name, Rung: rung, Clears: clears, Available: why == "", Why: why},
			Steps: steps,
		})
	}
	nodetoolWhy := ""
	if ac.Nodetool == "" {
		nodetoolWhy = "actuator.nodetool is not set"
	}
	add("throttle-compaction", actuator.LiveControl, []actuator.Kind{actuator.DiskOverload}, nodetoolWhy,
		func(actuator.Diagnosis, *actuator.Grant, string) []journal.Step {
			return []journal.Step{commandStep("nodetool setcompactionthroughput",
				actions.SetCompactionThroughput(ac.Nodetool, ac.CompactionThroughputMiB).Run)}
		})
	add("reduce-compactors", actuator.LiveControl, []actuator.Kind{actuator.CPUOverload}, nodetoolWhy,
		func(actuator.Diagnosis, *actuator.Grant, string) []journal.Step {
			return []journal.Step{commandStep("nodetool setconcurrentcompactors",
				actions.SetConcurrentCompactors(ac.Nodetool, 1).Run)}
		})
	sidecarWhy := ""
	if len(ac.SidecarUnits) == 0 {
		sidecarWhy = "actuator.sidecar_units is empty"
	}
	add("restart-sidecars", actuator.RestartSidecar, []actuator.Kind{actuator.CPUOverload, actuator.MemoryStall}, sidecarWhy,
		func(actuator.Diagnosis, *actuator.Grant, string) []journal.Step {
			var steps []journal.Step
			for _, u := range ac.SidecarUnits {
				r := actions.NewSystemdRestart(u)
				steps = append(steps, journal.Step{Name: "restart " + u, Do: func(ctx context.Context) error {
					_, err := r.Run(ctx)
					return err
				}})
			}
			return steps
		})
	add("jvmquake", actuator.RestartDatabase, []actuator.Kind{actuator.QueryOfDeath}, "",
		func(d actuator.Diagnosis, _ *actuator.Grant, _ string) []journal.Step {
			pid := subjectPID(d.Subject)
			q := actions.JVMQuake{PID: pid, DumpDir: ac.DumpDir, HeapDump: ac.HeapDump, Timeout: time.Minute}
			return []journal.Step{{Name: fmt.Sprintf("dump and kill JVM %d", pid), Do: func(ctx context.Context) error {
				if pid <= 0 {
					return fmt.Errorf("no pid in subject %q", d.Subject)
				}
				if err := os.MkdirAll(ac.DumpDir, 0o755); err != nil {
					return err
				}
				_, err := q.Run(ctx) // a JVM already gone counts as done: the step is idempotent
				return err
			}}}
		})
	for _, h := range []struct {
		name  string
		rung  actuator.Rung
		argv  []string
		field string
	}{
		{"transfer-and-exit", actuator.TransferAndExit, ac.TransferHook, "actuator.transfer_hook"},
		{"exit-without-transfer", actuator.ExitWithoutTrans, ac.ExitHook, "actuator.exit_hook"},
	} {
		why := ""
		if len(h.argv) == 0 {
			why = h.field + " is empty"
		}
		hook := actions.Hook{Argv: h.argv}
		add(h.name, h.rung, []actuator.Kind{actuator.SlowDrive, actuator.FailedDrive}, why,
			func(d actuator.Diagnosis, g *actuator.Grant, id string) []journal.Step {
				call := actions.HookCall{DecisionID: id, Diagnosis: d.Kind}
				if g != nil {
					call.LockToken = g.Token
				}
				return []journal.Step{{Name: strings.Join(h.argv, " "), Do: func(ctx context.Context) error {
					_, err := hook.Run(ctx, call)
					return err
				}}}
			})
	}
	return out
}

// withLiveness appends to every action a CQL liveness check that waits up
// to two minutes for the database to answer again.
func withLiveness(acts []controller.Action, hosts []string) []controller.Action {
	if len(hosts) == 0 {
		return acts
	}
	check := actions.CQLLiveness{Hosts: hosts, Timeout: 5 * time.Second}
	for i := range acts {
		steps := acts[i].Steps
		acts[i].Steps = func(d actuator.Diagnosis, g *actuator.Grant, id string) []journal.Step {
			return append(steps(d, g, id), journal.Step{Name: "cql liveness after", Do: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				for {
					_, err := check.Check(ctx)
					if err == nil {
						return nil
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("database does not answer CQL: %w", err)
					case <-time.After(5 * time.Second):
					}
				}
			}})
		}
	}
	return acts
}

func commandStep(name string, run func(context.Context) (actions.CommandResult, error)) journal.Step {
	return journal.Step{Name: name, Do: func(ctx context.Context) error {
		_, err := run(ctx)
		return err
	}}
}

var pidRE = regexp.MustCompile(`^pid (\d+)`)

// subjectPID reads the pid out of a JVM diagnosis subject ("pid 1234 (cassandra)").
func subjectPID(subject string) int {
	m := pidRE.FindStringSubmatch(subject)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// reloadGoals reads the goals file again; a bad file is logged and the
// goals in force stay.
// It returns false when the file was refused.
func (a *agent) reloadGoals() bool {
	if a.act == nil || a.act.goals == "" {
		return true
	}
	g, err := goals.Load(a.act.goals)
	if err != nil {
		a.logger.Error("goals reload failed; keeping the goals in force", "err", err)
		return false
	}
	a.act.ctl.SetGoals(g)
	a.logger.Info("goals reloaded", "file", a.act.goals)
	a.flight.goalsChanged(g)
	return true
}
