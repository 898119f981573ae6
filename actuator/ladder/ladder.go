package ladder

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nervehq/nerve/actuator"
)

// Errors Decide returns with a Plan that still explains itself.
var (
	// ErrNoAction means no rung left can clear the diagnosis: none is
	// configured and available, or the top of the ladder was tried. Call a
	// human.
	ErrNoAction = errors.New("no action left")
	// ErrWaiting means an action was taken for this diagnosis less than
	// EscalateAfter ago: give it time to work.
	ErrWaiting = errors.New("waiting for the last action to work")
)

// Defaults for the zero values of Config.
const (
	DefaultEscalateAfter              = 10 * time.Minute
	DefaultMaxDatabaseRestartsPerHour = 3
)

// DefaultRateLimit applies to an action without its own.
var DefaultRateLimit = RateLimit{Max: 3, Per: time.Hour}

// ActionInfo is what the ladder knows of an action.
type ActionInfo struct {
	Name      string          `json:"name"`          // e.g. throttle-compaction, transfer-and-exit
	Rung      actuator.Rung   `json:"rung"`          // the rung it stands on
	Clears    []actuator.Kind `json:"clears"`        // the diagnoses it can clear
	Available bool            `json:"available"`     // whether the configuration allows it
	Why       string          `json:"why,omitempty"` // why not available
}

// RateLimit allows at most Max actions in any window of length Per.
type RateLimit struct {
	Max int           `json:"max"`
	Per time.Duration `json:"per"`
}

// Config guards the ladder. Zero values take the defaults.
type Config struct {
	// Modes per rung; a missing rung takes the default: rungs 1-2 enforce,
	// 3-5 advise. A rung may not be more permissive than the one below it.
	Modes map[actuator.Rung]actuator.Mode
	// EscalateAfter is how long a diagnosis may persist after an action
	// before the ladder goes one rung up.
	EscalateAfter time.Duration
	// RateLimits by action name; an action without one gets
	// DefaultRateLimit.
	RateLimits       map[string]RateLimit
	DefaultRateLimit RateLimit
	// MaxDatabaseRestartsPerHour trips the crash-loop guard: after that many
	// database restarts within an hour, no action that stops the database is
	// taken for an hour.
	MaxDatabaseRestartsPerHour int
	// GlobalMode caps every rung's mode: observe silences everything,
	// advise stops all action. Default enforce: the per-rung modes apply.
	GlobalMode actuator.Mode
}

// Plan is the ladder's answer for one diagnosis.
type Plan struct {
	Diagnosis actuator.Diagnosis `json:"diagnosis"`
	Action    ActionInfo         `json:"action"` // zero when no action fits
	Rung      actuator.Rung      `json:"rung"`
	Mode      actuator.Mode      `json:"mode"`
	// Considered is every rung looked at, lowest first, and why each was
	// taken or not.
	Considered []Considered `json:"considered"`
	NeedsLock  bool         `json:"needs_lock"` // the rung stops the database: hold the rack lock
	// Act is true only in enforce mode with no guard refusing.
	Act bool `json:"act"`
	// WaitUntil, with ErrWaiting, is when the ladder will go up a rung if
	// the diagnosis is still there.
	WaitUntil time.Time `json:"wait_until,omitzero"`
}

// Considered is one rung (and action) the ladder looked at.
type Considered struct {
	Rung   actuator.Rung `json:"rung"`
	Action string        `json:"action,omitempty"` // "" when none is configured at the rung
	Chosen bool          `json:"chosen"`           // the rung the plan takes
	Why    string        `json:"why"`              // why it was taken or passed over
}

// Ladder decides. It is safe for concurrent use.
type Ladder struct {
	cfg     Config
	actions []ActionInfo // by rung, then as given

	mu           sync.Mutex
	taken        map[subject]taken      // the last action per diagnosis; guarded by mu
	history      map[string][]time.Time // acts per action name, within its rate window; guarded by mu
	restarts     []time.Time            // database restarts within the last hour; guarded by mu
	trippedUntil time.Time              // crash-loop guard; guarded by mu
}

type subject struct {
	kind actuator.Kind
	name string
}

type taken struct {
	action string
	rung   actuator.Rung
	at     time.Time
}

// New checks cfg and the actions, fills in the defaults, and returns a
// ladder. Errors name the offending fields, all of them at once.
func New(cfg Config, actions []ActionInfo) (*Ladder, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	byName := map[string]int{}
	for i, a := range actions {
		switch j, dup := byName[a.Name]; {
		case a.Name == "":
			bad("actions[%d].Name: empty", i)
		case dup:
			bad("actions[%d].Name: %q also at actions[%d]", i, a.Name, j)
		}
		byName[a.Name] = i
		if a.Rung < actuator.LiveControl || a.Rung > actuator.ExitWithoutTrans {
			bad("actions[%d].Rung: %d, want 1 to 5", i, a.Rung)
		}
		for _, k := range a.Clears {
			if !slices.Contains(actuator.Kinds, k) {
				bad("actions[%d].Clears: unknown kind %q", i, k)
			}
		}
	}

	if cfg.GlobalMode == "" {
		cfg.GlobalMode = actuator.Enforce
	} else if rank(cfg.GlobalMode) < 0 {
		bad("GlobalMode: unknown mode %q", cfg.GlobalMode)
	}
	modes := map[actuator.Rung]actuator.Mode{}
	for r, m := range cfg.Modes {
		if r < actuator.LiveControl || r > actuator.ExitWithoutTrans {
			bad("Modes[%d]: no such rung", r)
		} else if rank(m) < 0 {
			bad("Modes[%d]: unknown mode %q", r, m)
		}
		modes[r] = m
	}
	for r := actuator.LiveControl; r <= actuator.ExitWithoutTrans; r++ {
		if _, ok := modes[r]; !ok {
			modes[r] = actuator.Enforce
			if r.StopsDatabase() {
				modes[r] = actuator.Advise
			}
		}
		if r > actuator.LiveControl && rank(modes[r]) > rank(modes[r-1]) && rank(modes[r-1]) >= 0 {
			bad("Modes[%d]=%s is more permissive than Modes[%d]=%s: the ladder would act above a rung it only %ss",
				r, modes[r], r-1, modes[r-1], modes[r-1])
		}
	}
	cfg.Modes = modes

	switch {
	case cfg.EscalateAfter < 0:
		bad("EscalateAfter: %s, want > 0", cfg.EscalateAfter)
	case cfg.EscalateAfter == 0:
		cfg.EscalateAfter = DefaultEscalateAfter
	}
	if cfg.DefaultRateLimit == (RateLimit{}) {
		cfg.DefaultRateLimit = DefaultRateLimit
	} else if err := cfg.DefaultRateLimit.check(); err != nil {
		bad("DefaultRateLimit: %w", err)
	}
	for name, rl := range cfg.RateLimits {
		if _, ok := byName[name]; !ok {
			bad("RateLimits[%q]: no such action", name)
		}
		if err := rl.check(); err != nil {
			bad("RateLimits[%q]: %w", name, err)
		}
	}
	switch {
	case cfg.MaxDatabaseRestartsPerHour < 0:
		bad("MaxDatabaseRestartsPerHour: %d, want > 0", cfg.MaxDatabaseRestartsPerHour)
	case cfg.MaxDatabaseRestartsPerHour == 0:
		cfg.MaxDatabaseRestartsPerHour = DefaultMaxDatabaseRestartsPerHour
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ladder config: %w", errors.Join(errs...))
	}

	sorted := slices.Clone(actions)
	slices.SortStableFunc(sorted, func(a, b ActionInfo) int { return int(a.Rung - b.Rung) })
	return &Ladder{
		cfg:     cfg,
		actions: sorted,
		taken:   map[subject]taken{},
		history: map[string][]time.Time{},
	}, nil
}

func (rl RateLimit) check() error {
	if rl.Max <= 0 || rl.Per <= 0 {
		return fmt.Errorf("Max %d per %s, want both > 0", rl.Max, rl.Per)
	}
	return nil
}

// rank orders modes by how far they go; -1 for an unknown one.
func rank(m actuator.Mode) int {
	return slices.Index([]actuator.Mode{actuator.Observe, actuator.Advise, actuator.Enforce}, m)
}

// Mode is the effective mode of a rung: its own, capped by GlobalMode.
func (l *Ladder) Mode(r actuator.Rung) actuator.Mode {
	if m := l.cfg.Modes[r]; rank(m) < rank(l.cfg.GlobalMode) {
		return m
	}
	return l.cfg.GlobalMode
}

// Decide plans the action for d: the lowest rung whose available action can
// clear d.Kind, above any rung already tried for this diagnosis. It returns
// ErrWaiting while the last action has less than EscalateAfter to work,
// ErrNoAction when nothing is left, and, for a chosen action a guard
// refuses, an error wrapping actuator.ErrRateLimited or
// actuator.ErrCrashLoop. The Plan explains itself in every case.
func (l *Ladder) Decide(d actuator.Diagnosis, now time.Time) (Plan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := Plan{Diagnosis: d}

	floor := actuator.LiveControl
	last, tried := l.taken[subject{d.Kind, d.Subject}]
	if tried && d.Since.After(last.at) {
		tried = false // cleared since, and back: a new episode
	}
	if tried {
		if until := last.at.Add(l.cfg.EscalateAfter); now.Before(until) {
			p.Action, _ = l.action(last.action)
			p.Rung, p.Mode, p.WaitUntil = last.rung, l.Mode(last.rung), until
			p.Considered = []Considered{{Rung: last.rung, Action: last.action, Why: fmt.Sprintf(
				"taken at %s; it has until %s to clear %s before the ladder goes up",
				stamp(last.at), stamp(until), d.Kind)}}
			return p, fmt.Errorf("%s on %s: %w", d.Kind, d.Subject, ErrWaiting)
		}
		floor = last.rung + 1
	}

	for r := actuator.LiveControl; r <= actuator.ExitWithoutTrans; r++ {
		at := l.at(r)
		if len(at) == 0 {
			p.Considered = append(p.Considered, Considered{Rung: r, Why: "no action configured"})
			continue
		}
		for _, a := range at {
			c := Considered{Rung: r, Action: a.Name}
			switch {
			case r < floor:
				c.Why = fmt.Sprintf("below %s (rung %d), taken at %s and %s still there %s later",
					last.action, last.rung, stamp(last.at), d.Kind, now.Sub(last.at))
			case !slices.Contains(a.Clears, d.Kind):
				c.Why = fmt.Sprintf("cannot clear %s", d.Kind)
			case !a.Available:
				c.Why = "not available: " + a.Why
			}
			if c.Why != "" {
				p.Considered = append(p.Considered, c)
				continue
			}
			c.Chosen = true
			c.Why = fmt.Sprintf("lowest rung that can clear %s", d.Kind)
			if tried {
				c.Why = fmt.Sprintf("escalated: lowest rung above %s that can clear %s", last.action, d.Kind)
			}
			p.Action, p.Rung, p.Mode, p.NeedsLock = a, r, l.Mode(r), r.StopsDatabase()
			err := l.guard(a, now)
			if err != nil {
				c.Why += "; refused: " + err.Error()
			} else if p.Mode != actuator.Enforce {
				c.Why += fmt.Sprintf("; mode %s: not acting", p.Mode)
			} else {
				p.Act = true
			}
			p.Considered = append(p.Considered, c)
			if err != nil {
				return p, fmt.Errorf("%s on %s: %s: %w", d.Kind, d.Subject, a.Name, err)
			}
			return p, nil
		}
	}
	return p, fmt.Errorf("%s on %s: %w", d.Kind, d.Subject, ErrNoAction)
}

// guard says whether the crash-loop guard or a's rate limit refuses it now.
func (l *Ladder) guard(a ActionInfo, now time.Time) error {
	if a.Rung.StopsDatabase() && now.Before(l.trippedUntil) {
		return fmt.Errorf("%d database restarts within an hour, no stopping the database until %s: %w",
			l.cfg.MaxDatabaseRestartsPerHour, stamp(l.trippedUntil), actuator.ErrCrashLoop)
	}
	rl := l.rateLimit(a.Name)
	if n := len(within(l.history[a.Name], now, rl.Per)); n >= rl.Max {
		return fmt.Errorf("%d in the last %s, at most %d: %w", n, rl.Per, rl.Max, actuator.ErrRateLimited)
	}
	return nil
}

// Record tells the ladder what became of a plan, at now. An action that
// ran (whatever its outcome: one that failed did not clear the diagnosis
// either) starts the diagnosis's escalation clock; a plan in advise or
// observe mode does too, so advice climbs the ladder as enforcement would.
// Only plans that acted count against rate limits and, on rung 3, the
// crash-loop guard. A plan that never ran changes nothing: no action,
// waiting, refused by a guard, or an outcome wrapping ErrWaiting,
// ErrNoAction, actuator.ErrLockDenied, ErrRateLimited or ErrCrashLoop.
func (l *Ladder) Record(p Plan, now time.Time, outcome error) {
	if p.Action.Name == "" || !p.WaitUntil.IsZero() || (p.Mode == actuator.Enforce && !p.Act) {
		return // nothing ran: no action, waiting, or a guard refused
	}
	for _, refused := range []error{ErrWaiting, ErrNoAction, actuator.ErrLockDenied, actuator.ErrRateLimited, actuator.ErrCrashLoop} {
		if errors.Is(outcome, refused) {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.taken[subject{p.Diagnosis.Kind, p.Diagnosis.Subject}] = taken{action: p.Action.Name, rung: p.Rung, at: now}
	if !p.Act {
		return
	}
	rl := l.rateLimit(p.Action.Name)
	l.history[p.Action.Name] = append(within(l.history[p.Action.Name], now, rl.Per), now)
	if p.Rung == actuator.RestartDatabase {
		l.restarts = append(within(l.restarts, now, time.Hour), now)
		if len(l.restarts) >= l.cfg.MaxDatabaseRestartsPerHour {
			l.trippedUntil = now.Add(time.Hour)
		}
	}
}

func (l *Ladder) rateLimit(name string) RateLimit {
	if rl, ok := l.cfg.RateLimits[name]; ok {
		return rl
	}
	return l.cfg.DefaultRateLimit
}

func (l *Ladder) at(r actuator.Rung) []ActionInfo {
	var out []ActionInfo
	for _, a := range l.actions {
		if a.Rung == r {
			out = append(out, a)
		}
	}
	return out
}

func (l *Ladder) action(name string) (ActionInfo, bool) {
	for _, a := range l.actions {
		if a.Name == name {
			return a, true
		}
	}
	return ActionInfo{}, false
}

// within returns the times in (now-per, now], dropping older ones in place.
func within(ts []time.Time, now time.Time, per time.Duration) []time.Time {
	cut := now.Add(-per)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
