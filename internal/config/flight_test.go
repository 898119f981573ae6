package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFlightDefaults(t *testing.T) {
	f := Default().Flight
	want := Flight{Enabled: true, MaxEvents: 10000, MaxAge: 15 * time.Minute, Rate: 200,
		BundleLookback: 5 * time.Minute, BundleMaxEvents: 1000}
	if f != want {
		t.Errorf("flight defaults %+v, want %+v (thresholds 0: from the goals)", f, want)
	}
}

func TestParseFlight(t *testing.T) {
	cfg, err := Parse([]byte("flight:\n  max_events: 500\n  thresholds: {runqueue: 1us, safepoint: 250ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Flight
	if f.MaxEvents != 500 || f.Thresholds.RunQueue != time.Microsecond || f.Thresholds.Safepoint != 250*time.Millisecond ||
		f.Thresholds.BlockIOService != 0 || f.Rate != 200 {
		t.Errorf("flight %+v: want max_events and two thresholds changed, the rest default", f)
	}
	_, err = Parse([]byte("flight:\n  thresholds: {disk: 1ms}\n"))
	if err == nil || !strings.Contains(err.Error(), "disk: unknown field") {
		t.Errorf("unknown threshold: %v, want it named", err)
	}
}

func TestValidateFlight(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Flight)
		want string // "" = valid
	}{
		{"defaults", func(*Flight) {}, ""},
		{"off", func(f *Flight) { f.Enabled = false }, ""},
		{"max events zero", func(f *Flight) { f.MaxEvents = 0 }, "flight.max_events: must be from 1 to 1000000, got 0"},
		{"max events huge", func(f *Flight) { f.MaxEvents = 1 << 30 }, "flight.max_events"},
		{"max age short", func(f *Flight) { f.MaxAge = time.Millisecond }, "flight.max_age: must be from 1s to 24h0m0s, got 1ms"},
		{"rate zero", func(f *Flight) { f.Rate = 0 }, "flight.rate: must be from 1 to 1000000 outliers per CPU per second, got 0"},
		{"negative threshold", func(f *Flight) { f.Thresholds.PageFault = -time.Millisecond }, "flight.thresholds.pagefault: must not be negative"},
		{"tiny threshold", func(f *Flight) { f.Thresholds.RunQueue = time.Nanosecond }, ""},
		{"lookback negative", func(f *Flight) { f.BundleLookback = -time.Second }, "flight.bundle_lookback: must not be negative"},
		{"lookback over age", func(f *Flight) { f.MaxAge, f.BundleLookback = time.Minute, 2*time.Minute },
			"flight.bundle_lookback: must not exceed flight.max_age (1m0s)"},
		{"lookback zero", func(f *Flight) { f.BundleLookback = 0 }, ""},
		{"bundle events zero", func(f *Flight) { f.BundleMaxEvents = 0 }, "flight.bundle_max_events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c.Flight)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate = nil, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate = %q, want it to contain %q", err, tt.want)
			}
			var errs Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					if !slices.Contains(Paths(), e.Path) {
						t.Errorf("Validate reports %q, which is not a setting", e.Path)
					}
				}
			}
		})
	}
}
