package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/ladder"
)

// Every reported decision gets its bundle written once, before its report
// is saved, and the report names it; acted on or only advised.
func TestBundleBeforeReport(t *testing.T) {
	all := map[actuator.Rung]actuator.Mode{1: actuator.Enforce, 2: actuator.Enforce, 3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Enforce}
	for _, tc := range []struct {
		name  string
		modes map[actuator.Rung]actuator.Mode
		want  string // outcome
	}{{"advised", nil, "advised: transfer-and-exit"}, {"acted", all, "done"}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, st := setup(t, &ladder.LocalLock{}, tc.modes)
			var calls []string
			c.cfg.Bundle = func(d actuator.Diagnosis, id string, at time.Time) (string, error) {
				if saved, _ := st.List(time.Time{}, 0); len(saved) != 0 {
					t.Errorf("bundle of %s written after %d reports were saved", id, len(saved))
				}
				if d.Kind != actuator.SlowDrive || d.Subject != "sdb" || at.Before(d.Since) {
					t.Errorf("bundle for %s on %s at %v (since %v)", d.Kind, d.Subject, at, d.Since)
				}
				calls = append(calls, id)
				return "/state/incidents/" + id + ".json", nil
			}
			decs := run(c, time.Unix(1e9, 0), 2*time.Minute)
			if len(decs) != 1 || decs[0].Outcome != tc.want {
				t.Fatalf("decisions %+v, want one %s", decs, tc.want)
			}
			want := "/state/incidents/" + decs[0].ID + ".json"
			if len(calls) != 1 || decs[0].Bundle != want {
				t.Errorf("bundle calls %v, report bundle %q; want one call and %q", calls, decs[0].Bundle, want)
			}
			if got, err := st.Get(decs[0].ID); err != nil || got.Bundle != want {
				t.Errorf("stored report bundle %q (%v), want %q", got.Bundle, err, want)
			}
		})
	}
}

// A bundle that cannot be written costs the decision nothing but its
// bundle.
func TestBundleFailure(t *testing.T) {
	c, _, st := setup(t, &ladder.LocalLock{}, nil)
	c.cfg.Bundle = func(actuator.Diagnosis, string, time.Time) (string, error) { return "", errors.New("disk full") }
	decs := run(c, time.Unix(1e9, 0), 2*time.Minute)
	if len(decs) != 1 || decs[0].Bundle != "" {
		t.Fatalf("decisions %+v, want one without a bundle", decs)
	}
	if _, err := st.Get(decs[0].ID); err != nil {
		t.Errorf("decision not saved: %v", err)
	}
}
