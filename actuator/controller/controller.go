// Package controller runs the actuator: each tick it steps the diagnosis
// rules with a fresh sample, asks the ladder for the least risky action for
// every active diagnosis, takes the rack lock when the action stops the
// database, carries the action out through the crash-only journal, and
// writes a decision report for every decision, acted on or not. It is the
// only place where those packages meet; the agent feeds it samples.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/diagnose"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/actuator/report"
)

// Action is one entry of the action catalog: what the ladder knows of it,
// and how to build its steps for a diagnosis.
type Action struct {
	Info ladder.ActionInfo
	// Steps builds the action's idempotent steps. grant is nil when the
	// rung holds no rack lock.
	Steps func(d actuator.Diagnosis, grant *actuator.Grant, decisionID string) []journal.Step
}

// Config wires the controller.
type Config struct {
	Node    string
	Goals   goals.Goals
	Ladder  ladder.Config
	Actions []Action
	Lock    actuator.Lock
	Journal *journal.Journal
	Reports *report.Store
	// Alert, if set, is called for every saved decision (e.g. the webhook,
	// and the manager's history).
	Alert func(context.Context, report.Decision)
	// Checkpoint, if set, records each step done under a rack lock at the
	// lock's issuer (the manager), with the grant's fencing token.
	Checkpoint func(g actuator.Grant, step string) error
	// Bundle, if set, writes the evidence of a decision about to be
	// reported for the first time (the flight recorder's outliers from
	// before the diagnosis until at) and returns where it is, for the
	// report's Bundle. It is called before the report is saved, so that a
	// crash right after a decision leaves its bundle on disk; a failure is
	// logged and the decision goes on without one.
	Bundle func(d actuator.Diagnosis, decisionID string, at time.Time) (string, error)
	Logger *slog.Logger
}

// Controller is the actuator's loop body. Tick and Resume are called from
// one goroutine; Metrics from any.
type Controller struct {
	cfg     Config
	engine  *diagnose.Engine
	ladder  *ladder.Ladder
	actions map[string]Action

	mu       sync.Mutex        // guards the fields below, read by Metrics
	reported map[string]string // kind/subject -> what the last report said, to report changes only
	active   map[actuator.Kind]int
	results  map[[2]string]int // (action, result) -> count
}

// New checks the configuration and builds the ladder.
func New(cfg Config) (*Controller, error) {
	if cfg.Journal == nil || cfg.Reports == nil || cfg.Lock == nil {
		return nil, errors.New("controller: journal, reports and lock are required")
	}
	if err := cfg.Goals.Validate(); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	infos := make([]ladder.ActionInfo, 0, len(cfg.Actions))
	byName := map[string]Action{}
	for _, a := range cfg.Actions {
		if _, dup := byName[a.Info.Name]; dup {
			return nil, fmt.Errorf("controller: action %q is configured twice", a.Info.Name)
		}
		byName[a.Info.Name] = a
		infos = append(infos, a.Info)
	}
	l, err := ladder.New(cfg.Ladder, infos)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	// Every counter an operator alerts on exists from the start, at 0, so
	// that increase() sees the first decision too: each configured action
	// with each result, and "none" with "no action left".
	results := map[[2]string]int{{noAction, resultNoActionLeft}: 0}
	for name := range byName {
		for _, r := range actionResults {
			results[[2]string{name, r}] = 0
		}
	}
	return &Controller{
		cfg: cfg, engine: diagnose.New(cfg.Goals), ladder: l, actions: byName,
		reported: map[string]string{}, active: map[actuator.Kind]int{}, results: results,
	}, nil
}

// The results nerve_actions_total counts; outcomeClass maps a decision's
// outcome onto them.
const (
	noAction           = "none" // the action label of a decision without one
	resultNoActionLeft = "no action left"
)

var actionResults = []string{"done", "failed", "refused", "advised", "observed"}

// SetGoals replaces the goals; rule state carries over.
func (c *Controller) SetGoals(g goals.Goals) { c.engine.SetGoals(g) }

// Active lists the diagnoses that hold now.
func (c *Controller) Active() []actuator.Diagnosis { return c.engine.Active() }

// Mode is the ladder's mode for a rung.
func (c *Controller) Mode(r actuator.Rung) actuator.Mode { return c.ladder.Mode(r) }

// Tick diagnoses one sample and decides for every active diagnosis. It
// returns the decisions it reported.
func (c *Controller) Tick(ctx context.Context, s actuator.Sample) []report.Decision {
	for _, ch := range c.engine.Step(s) {
		verb := "cleared"
		if ch.Entered {
			verb = "entered"
		}
		c.cfg.Logger.Info("diagnosis "+verb, "kind", ch.Diagnosis.Kind, "subject", ch.Diagnosis.Subject)
		if !ch.Entered {
			c.mu.Lock()
			delete(c.reported, key(ch.Diagnosis))
			c.mu.Unlock()
		}
	}
	active := c.engine.Active()
	counts := map[actuator.Kind]int{}
	var out []report.Decision
	for _, d := range active {
		counts[d.Kind]++
		if dec, ok := c.decide(ctx, d, s.At); ok {
			out = append(out, dec)
		}
	}
	c.mu.Lock()
	c.active = counts
	c.mu.Unlock()
	return out
}

func key(d actuator.Diagnosis) string { return string(d.Kind) + "/" + d.Subject }

// decide asks the ladder and acts or advises; it reports only what changed:
// a new diagnosis, a new plan, or an action taken.
func (c *Controller) decide(ctx context.Context, d actuator.Diagnosis, now time.Time) (report.Decision, bool) {
	plan, err := c.ladder.Decide(d, now)
	dec := report.Decision{ID: decisionID(now, d), At: now, Plan: plan, Context: d.Context}
	switch {
	case errors.Is(err, ladder.ErrWaiting):
		return dec, false // the last action still has time to work
	case errors.Is(err, ladder.ErrNoAction):
		dec.Outcome = "no action left: call a human"
	case err != nil:
		dec.Outcome = "refused: " + err.Error()
	case !plan.Act:
		dec.Outcome = string(plan.Mode) + "d: " + plan.Action.Name // "advised: ...", "observed: ..."
		if plan.Action.Name == "" {
			dec.Outcome = string(plan.Mode) + "d"
		}
	}
	if dec.Outcome == "" && plan.NeedsLock {
		// Ask for the rack lock before anything runs; a refusal is a
		// decision like any other, reported once.
		g, lerr := c.cfg.Lock.Acquire(plan.Action.Name, dec.ID)
		if lerr != nil {
			dec.Outcome = "refused: " + lerr.Error()
		} else {
			dec.LockToken = g.Token
		}
	}
	summary := fmt.Sprintf("%s|%d|%s", plan.Action.Name, plan.Rung, outcomeClass(dec.Outcome))
	c.mu.Lock()
	same := c.reported[key(d)] == summary
	c.reported[key(d)] = summary
	c.mu.Unlock()
	if dec.Outcome != "" {
		if err == nil {
			c.ladder.Record(plan, now, nil) // advice climbs the ladder too
		}
		if same {
			return dec, false
		}
		c.count(plan.Action.Name, outcomeClass(dec.Outcome))
		dec.Bundle = c.bundle(dec)
		return dec, c.save(ctx, dec)
	}
	dec.Bundle = c.bundle(dec)
	return c.act(ctx, dec), true
}

// bundle writes the decision's evidence bundle, if one is configured, and
// returns where it is; "" when none was written.
func (c *Controller) bundle(dec report.Decision) string {
	if c.cfg.Bundle == nil {
		return ""
	}
	ref, err := c.cfg.Bundle(dec.Plan.Diagnosis, dec.ID, dec.At)
	if err != nil {
		c.cfg.Logger.Error("write decision bundle", "id", dec.ID, "err", err)
		return ""
	}
	return ref
}

// act takes the rack lock when needed, then runs the steps through the
// journal, with a report saved before (so a crash can resume it) and after.
func (c *Controller) act(ctx context.Context, dec report.Decision) report.Decision {
	plan := dec.Plan
	a, ok := c.actions[plan.Action.Name]
	if !ok {
		dec.Outcome = "failed: action " + plan.Action.Name + " has no steps"
		c.save(ctx, dec)
		return dec
	}
	var grant *actuator.Grant
	if plan.NeedsLock {
		g := actuator.Grant{ID: dec.ID, Token: dec.LockToken} // acquired in decide
		grant = &g
		defer func() {
			if ctx.Err() != nil {
				return // the agent is stopping: Resume carries on under this grant
			}
			if err := c.cfg.Lock.Release(g); err != nil {
				c.cfg.Logger.Warn("release rack lock", "token", g.Token, "err", err)
			}
		}()
	}
	dec.Outcome = "running"
	c.save(ctx, dec) // the journal's record and this report resume a crash
	steps := c.steps(a, plan.Diagnosis, grant, dec.ID)
	err := c.cfg.Journal.Run(ctx, dec.ID, steps)
	return c.finish(ctx, dec, err)
}

// steps prepends, for a locked action, a check that the lock still holds
// right before the database is touched.
func (c *Controller) steps(a Action, d actuator.Diagnosis, grant *actuator.Grant, id string) []journal.Step {
	steps := a.Steps(d, grant, id)
	if grant == nil {
		return steps
	}
	g := *grant
	if c.cfg.Checkpoint != nil {
		for i := range steps {
			do, name := steps[i].Do, steps[i].Name
			steps[i].Do = func(ctx context.Context) error {
				if err := do(ctx); err != nil {
					return err
				}
				if err := c.cfg.Checkpoint(g, name); err != nil {
					c.cfg.Logger.Warn("checkpoint at the manager", "step", name, "err", err)
				}
				return nil
			}
		}
	}
	validate := journal.Step{Name: "validate rack lock", Do: func(context.Context) error { return c.cfg.Lock.Validate(g) }}
	return append([]journal.Step{validate}, steps...)
}

func (c *Controller) finish(ctx context.Context, dec report.Decision, err error) report.Decision {
	if rec, lerr := c.cfg.Journal.Load(dec.ID); lerr == nil {
		dec.Steps = rec.Steps
	}
	if ctx.Err() != nil {
		// The agent is stopping: the journal keeps the action pending and
		// Resume finishes it at the next start.
		dec.Outcome = "interrupted: resumes at the next start"
		c.save(context.Background(), dec)
		return dec
	}
	c.ladder.Record(dec.Plan, dec.At, err)
	if err != nil {
		dec.Outcome = "failed: " + err.Error()
		c.count(dec.Plan.Action.Name, "failed")
	} else {
		dec.Outcome = "done"
		c.count(dec.Plan.Action.Name, "done")
	}
	if c.save(ctx, dec) {
		if ferr := c.cfg.Journal.Forget(dec.ID); ferr != nil {
			c.cfg.Logger.Warn("forget journal record", "id", dec.ID, "err", ferr)
		}
	}
	return dec
}

// Resume finishes the actions a crash interrupted, without repeating a step
// the journal recorded as done. Call it once at start, before Tick.
func (c *Controller) Resume(ctx context.Context) error {
	pending, err := c.cfg.Journal.Pending()
	var errs []error
	if err != nil {
		errs = append(errs, err) // corrupt records were set aside; the rest resume
	}
	for _, rec := range pending {
		dec, gerr := c.cfg.Reports.Get(rec.ID)
		if gerr != nil {
			errs = append(errs, fmt.Errorf("resume %s: no decision report: %w", rec.ID, gerr))
			continue
		}
		a, ok := c.actions[dec.Plan.Action.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("resume %s: action %q is no longer configured", rec.ID, dec.Plan.Action.Name))
			continue
		}
		var grant *actuator.Grant
		if dec.LockToken != 0 {
			grant = &actuator.Grant{ID: dec.ID, Token: dec.LockToken}
		}
		c.cfg.Logger.Info("resuming interrupted action", "id", rec.ID, "action", a.Info.Name)
		rerr := c.cfg.Journal.Resume(ctx, rec.ID, c.steps(a, dec.Plan.Diagnosis, grant, dec.ID))
		c.finish(ctx, dec, rerr)
	}
	return errors.Join(errs...)
}

func (c *Controller) save(ctx context.Context, dec report.Decision) bool {
	if err := c.cfg.Reports.Save(dec); err != nil {
		c.cfg.Logger.Error("save decision report", "id", dec.ID, "err", err)
		return false
	}
	c.cfg.Logger.Info("decision", "id", dec.ID, "kind", dec.Plan.Diagnosis.Kind, "subject", dec.Plan.Diagnosis.Subject,
		"action", dec.Plan.Action.Name, "rung", dec.Plan.Rung, "outcome", dec.Outcome)
	if c.cfg.Alert != nil && dec.Outcome != "running" {
		c.cfg.Alert(ctx, dec)
	}
	return true
}

func (c *Controller) count(action, result string) {
	if action == "" {
		action = noAction
	}
	c.mu.Lock()
	c.results[[2]string{action, result}]++
	c.mu.Unlock()
}

func outcomeClass(o string) string {
	if i := strings.IndexAny(o, ":"); i >= 0 {
		return o[:i]
	}
	return o
}

var unsafeID = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// decisionID is unique per diagnosis and instant, and safe as a file name.
func decisionID(now time.Time, d actuator.Diagnosis) string {
	s := unsafeID.ReplaceAllString(string(d.Kind)+"-"+d.Subject, "_")
	if len(s) > 80 {
		s = s[:80]
	}
	return now.UTC().Format("20060102T150405.000") + "-" + strings.Trim(s, "_")
}
