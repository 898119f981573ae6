package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Text is the readable form of a decision, as `nerve status` prints it.
func Text(d Decision) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	line("decision %s at %s: %s", d.ID, stamp(d.At), d.Outcome)
	dg := d.Diagnosis
	line("what was wrong: %s on %s for %s, since %s", dg.Kind, dg.Subject, d.At.Sub(dg.Since), stamp(dg.Since))
	for _, e := range dg.Evidence {
		line("  %s = %s, threshold %s, for %s", e.Signal, value(e.Value, e.Unit), value(e.Threshold, e.Unit), e.For)
	}

	ctx := d.Context
	if len(ctx) == 0 {
		ctx = dg.Context
	}
	if len(ctx) > 0 {
		line("context:")
		for _, k := range slices.Sorted(maps.Keys(ctx)) {
			line("  %s = %g", k, ctx[k])
		}
	}

	switch {
	case !d.WaitUntil.IsZero():
		line("plan: waiting until %s for %s (rung %d) to work", stamp(d.WaitUntil), d.Action.Name, d.Rung)
	case d.Action.Name == "":
		line("plan: no action")
	default:
		lock := "not needed"
		if d.NeedsLock {
			lock = "needed"
		}
		line("plan: rung %d %s, mode %s, acting: %s, rack lock: %s", d.Rung, d.Action.Name, d.Mode, yesNo(d.Act), lock)
	}
	if len(d.Considered) > 0 {
		line("considered:")
		for _, c := range d.Considered {
			name := c.Action
			if name == "" {
				name = "(none)"
			}
			if c.Chosen {
				name += " (chosen)"
			}
			line("  rung %d %s: %s", c.Rung, name, c.Why)
		}
	}

	if d.LockToken != 0 {
		line("lock token: %d", d.LockToken)
	} else {
		line("lock token: none")
	}
	if len(d.Steps) > 0 {
		line("steps:")
		for _, s := range d.Steps {
			st := string(s.State)
			if !s.Started.IsZero() && !s.Ended.IsZero() {
				st += fmt.Sprintf(" in %s", s.Ended.Sub(s.Started))
			}
			if s.Runs > 1 {
				st += fmt.Sprintf(", run %d times", s.Runs)
			}
			if s.Error != "" {
				st += ": " + s.Error
			}
			line("  %s: %s", s.Name, st)
		}
	}
	line("outcome: %s", d.Outcome)
	if d.Bundle != "" {
		line("outliers: %s (nerve report --id %s)", d.Bundle, d.ID)
	}
	return b.String()
}

// value shows a figure in its unit: seconds as a duration, fractions as a
// percentage.
func value(v float64, unit string) string {
	switch unit {
	case "s", "seconds":
		return time.Duration(v * float64(time.Second)).String()
	case "fraction":
		return fmt.Sprintf("%.1f%%", v*100)
	case "":
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
