package flight

import (
	"time"
)

// Report is a window of outliers, summarised and raw: what GET
// /incidents/live answers, what `nerve report` prints, and, with the
// decision's fields set, the bundle kept with every decision.
type Report struct {
	// Decision, Kind, Subject and DiagnosedAt are a bundle's decision: its
	// id, the diagnosis, what it is about and when the rule entered.
	// Empty in a live report.
	Decision    string    `json:"decision,omitempty"`
	Kind        string    `json:"kind,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	DiagnosedAt time.Time `json:"diagnosed_at,omitzero"`
	// At is when the report was taken.
	At time.Time `json:"at"`
	// Filter is what picked the events: the window (Since, Until) and any
	// pid, device or signal.
	Filter Filter `json:"filter"`
	// Limit is how many raw events of each signal Events keeps at most
	// (the slowest); 0: all.
	Limit int `json:"limit,omitempty"`
	// Recorder is the recorder's bounds and every signal's counts at At:
	// a window that had drops is missing events.
	Recorder RecorderState `json:"recorder"`
	// Summary covers every event matched.
	Summary Summary `json:"summary"`
	// Matched is how many events the filter picked; LeftOut how many of
	// them Events does not hold (Limit).
	Matched int `json:"matched"`
	LeftOut int `json:"left_out,omitempty"`
	// Events are the raw outliers, oldest first.
	Events []Event `json:"events"`
}

// RecorderState is a Recorder's bounds and counts.
type RecorderState struct {
	MaxEvents int               `json:"max_events"`
	MaxAge    time.Duration     `json:"max_age_ns"`
	Counts    map[Signal]Counts `json:"counts"`
}

// State returns the recorder's bounds and counts now.
func (r *Recorder) State() RecorderState {
	return RecorderState{MaxEvents: r.cfg.MaxEvents, MaxAge: r.cfg.MaxAge, Counts: r.Counts()}
}

// Report takes the events q picks, summarises them and keeps the slowest
// q.Limit of each signal. A zero q.Until is now.
func (r *Recorder) Report(q Query) Report {
	now := r.cfg.Now()
	if q.Until.IsZero() {
		q.Until = now
	}
	events := r.Snapshot(q.Filter)
	kept, left := Slowest(events, q.Limit)
	if kept == nil {
		kept = []Event{}
	}
	return Report{
		At: now, Filter: q.Filter, Limit: q.Limit, Recorder: r.State(),
		Summary: Summarise(events), Matched: len(events), LeftOut: left, Events: kept,
	}
}

// Incident is a kept bundle as GET /incidents lists it: the decision it
// belongs to and how many outliers of each signal it holds.
type Incident struct {
	ID          string         `json:"id"`
	At          time.Time      `json:"at"`
	Kind        string         `json:"kind"`
	Subject     string         `json:"subject"`
	DiagnosedAt time.Time      `json:"diagnosed_at,omitzero"`
	Since       time.Time      `json:"since,omitzero"` // the window's start
	Counts      map[Signal]int `json:"counts"`         // events matched, by signal
}

// Incident is the listing entry of a bundle.
func (b Report) Incident() Incident {
	counts := map[Signal]int{}
	for _, s := range b.Summary.Signals {
		counts[s.Signal] = s.Count
	}
	return Incident{ID: b.Decision, At: b.At, Kind: b.Kind, Subject: b.Subject, DiagnosedAt: b.DiagnosedAt,
		Since: b.Filter.Since, Counts: counts}
}
