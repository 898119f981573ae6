package config

import (
	"fmt"
	"time"
)

// Flight is the flight recorder: the outliers of every probe (events slower
// than a threshold), kept in memory for a while and written with every
// decision, so that a report says who suffered and why.
type Flight struct {
	// Enabled sends outliers from the probes and keeps them; off, no
	// probe sends any and decisions carry no bundle.
	Enabled bool `yaml:"enabled"`
	// MaxEvents is how many outliers each signal's ring holds; the oldest
	// make room for the newest, counted as dropped (ring_full).
	MaxEvents int `yaml:"max_events"`
	// MaxAge is how long an outlier is kept.
	MaxAge time.Duration `yaml:"max_age"`
	// Rate is how many outliers per CPU per second each probe sends at
	// most; beyond it the kernel counts them (rate_limited) and sends
	// nothing.
	Rate int `yaml:"rate"`
	// Thresholds are the latencies above which an event is an outlier; 0
	// takes the goal's exit level (the goals in force at start).
	Thresholds FlightThresholds `yaml:"thresholds"`
	// BundleLookback is how long before the diagnosis entered a decision's
	// bundle starts.
	BundleLookback time.Duration `yaml:"bundle_lookback"`
	// BundleMaxEvents is how many raw outliers of each signal a bundle
	// keeps (the slowest); its summary covers them all.
	BundleMaxEvents int `yaml:"bundle_max_events"`
}

// FlightThresholds are the outlier thresholds, one per signal; 0 derives
// one from the goals.
type FlightThresholds struct {
	// BlockIOService is the block request service time above which a
	// request is an outlier; 0: disk.service_idle_p99.exit.
	BlockIOService time.Duration `yaml:"blockio_service"`
	// BlockIOQueue is the queue time above which a request is an outlier
	// (whatever its service time); 0: disk.queue_p99.exit.
	BlockIOQueue time.Duration `yaml:"blockio_queue"`
	// RunQueue is the run-queue delay above which a wait is an outlier; 0:
	// cpu.runqueue_p99.exit.
	RunQueue time.Duration `yaml:"runqueue"`
	// PageFault is the page-fault stall above which a stall is an outlier;
	// 0: memory.pagefault_stall_p99.exit.
	PageFault time.Duration `yaml:"pagefault"`
	// Safepoint is the safepoint pause above which a pause is an outlier;
	// 0: DefaultSafepointOutlier.
	Safepoint time.Duration `yaml:"safepoint"`
}

// DefaultSafepointOutlier is the safepoint threshold when none is set: the
// goals judge JVMs by the fraction of time stopped, not by one pause, so
// they give none. A pause of 100 ms is one a client notices.
const DefaultSafepointOutlier = 100 * time.Millisecond

// Flight recorder limits: beyond them a setting is far more likely a typo
// than a need.
const (
	MaxFlightEvents = 1_000_000      // per signal: about 750 MB at the largest event
	MaxFlightRate   = 1_000_000      // per CPU per second
	MinFlightAge    = time.Second    //
	MaxFlightAge    = 24 * time.Hour //
)

func (f Flight) validate() Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if f.MaxEvents < 1 || f.MaxEvents > MaxFlightEvents {
		add("flight.max_events", "must be from 1 to %d, got %d", MaxFlightEvents, f.MaxEvents)
	}
	if f.MaxAge < MinFlightAge || f.MaxAge > MaxFlightAge {
		add("flight.max_age", "must be from %v to %v, got %v", MinFlightAge, MaxFlightAge, f.MaxAge)
	}
	if f.Rate < 1 || f.Rate > MaxFlightRate {
		add("flight.rate", "must be from 1 to %d outliers per CPU per second, got %d", MaxFlightRate, f.Rate)
	}
	for _, t := range []struct {
		path string
		d    time.Duration
	}{
		{"flight.thresholds.blockio_service", f.Thresholds.BlockIOService},
		{"flight.thresholds.blockio_queue", f.Thresholds.BlockIOQueue},
		{"flight.thresholds.runqueue", f.Thresholds.RunQueue},
		{"flight.thresholds.pagefault", f.Thresholds.PageFault},
		{"flight.thresholds.safepoint", f.Thresholds.Safepoint},
	} {
		if t.d < 0 {
			add(t.path, "must not be negative (0 takes the goal), got %v", t.d)
		}
	}
	if f.BundleLookback < 0 {
		add("flight.bundle_lookback", "must not be negative, got %v", f.BundleLookback)
	} else if f.MaxAge >= MinFlightAge && f.BundleLookback > f.MaxAge {
		add("flight.bundle_lookback", "must not exceed flight.max_age (%v): older outliers are gone, got %v", f.MaxAge, f.BundleLookback)
	}
	if f.BundleMaxEvents < 1 || f.BundleMaxEvents > MaxFlightEvents {
		add("flight.bundle_max_events", "must be from 1 to %d, got %d", MaxFlightEvents, f.BundleMaxEvents)
	}
	return errs
}
