package javatest_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nervehq/nerve/jvm/javatest"
	"github.com/nervehq/nerve/jvm/thrash"
)

// These tests run real JVMs, one at a time: on a 2-CPU CI machine two at
// once would slow each other and blur the figures. G1 is pinned, as
// Cassandra runs it on Java 17, so the operation names and the fractions do
// not depend on the collector the JVM's ergonomics pick.

func TestPrograms(t *testing.T) {
	dir := t.TempDir()
	javatest.Compile(t, dir)
	for _, class := range []string{"SafepointLoop", "HeapThrash", "Busy"} {
		if _, err := os.Stat(filepath.Join(dir, class+".class")); err != nil {
			t.Fatalf("Compile: %v", err)
		}
	}
	g1 := []string{"-XX:+UseG1GC"}

	t.Run("SafepointLoop", func(t *testing.T) {
		j := javatest.Start(t, dir, "SafepointLoop", g1, "3")
		wait(t, j, time.Minute)
		recs, err := j.Safepoints()
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, r := range recs {
			ops[r.Operation]++
			if r.Total <= 0 {
				t.Errorf("record with no stop time: %+v", r)
			}
			if r.Uptime <= 0 || r.Uptime > time.Minute {
				t.Errorf("uptime %v out of range: %+v", r.Uptime, r)
			}
		}
		t.Logf("%d safepoints in 3 s: %v; stopped %.1f%% of the time", len(recs), ops, 100*javatest.StoppedFraction(recs))
		// Each round of the loop stops the JVM three times: System.gc(),
		// then two thread dumps.
		if ops["G1CollectFull"] < 10 || ops["ThreadDump"] < 20 {
			t.Errorf("safepoints by operation: %v, want at least 10 G1CollectFull and 20 ThreadDump", ops)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		j := javatest.Start(t, dir, "SafepointLoop", g1, "600")
		time.Sleep(time.Second)
		if err := j.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := j.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		// Killed mid-run, the log must still read (a partial last line is
		// left out).
		if _, err := j.Safepoints(); err != nil {
			t.Error(err)
		}
	})

	// The figures the detector's tests rely on: a thrashing JVM is stopped
	// more than the default configuration's critical fraction (5/6) of the
	// time, a healthy busy one a small fraction. Each log is also replayed
	// into a detector, with a threshold scaled down to the length of the run.
	t.Run("StoppedFraction", func(t *testing.T) {
		cfg := thrash.DefaultConfig()
		critical := cfg.CriticalFraction()
		cfg.Threshold = time.Second

		thrashing := measure(t, dir, "HeapThrash", 10, cfg)
		if thrashing.frac <= critical {
			t.Errorf("HeapThrash stopped %.1f%% of the time, want more than %.1f%%", 100*thrashing.frac, 100*critical)
		}
		if !thrashing.over {
			t.Errorf("a detector (%+v) fed HeapThrash's safepoints never went over", cfg)
		}

		busy := measure(t, dir, "Busy", 5, cfg)
		if busy.frac >= 0.05 {
			t.Errorf("Busy stopped %.1f%% of the time, want less than 5%%", 100*busy.frac)
		}
		if busy.over {
			t.Errorf("a detector (%+v) fed Busy's safepoints went over after %v", cfg, busy.overAfter)
		}
	})
}

type measured struct {
	frac      float64
	over      bool
	overAfter time.Duration // JVM time at the end of the pause that took the detector over
}

// measure runs class with a 64 MiB heap for seconds, prints the stopped
// fraction its safepoint log shows, and replays the log's pauses into a
// detector configured by cfg.
func measure(t *testing.T, dir, class string, seconds int, cfg thrash.Config) measured {
	t.Helper()
	j := javatest.Start(t, dir, class, []string{"-XX:+UseG1GC", "-Xmx64m"}, strconv.Itoa(seconds))
	wait(t, j, time.Duration(seconds)*time.Second+time.Minute)
	recs, err := j.Safepoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no safepoints logged", class)
	}
	m := measured{frac: javatest.StoppedFraction(recs)}

	d, err := thrash.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The log gives each safepoint's length and the running time before it,
	// from the JVM's start: enough to rebuild every pause on one timeline.
	base := time.Unix(0, 0)
	end := base
	var totals []time.Duration
	var stopped time.Duration
	for _, r := range recs {
		start := end.Add(r.SinceLast)
		end = start.Add(r.Total)
		d.Pause(start, end)
		if !m.over && d.Over(end) {
			m.over, m.overAfter = true, end.Sub(base)
		}
		totals = append(totals, r.Total)
		stopped += r.Total
	}
	// The programs end with a safepoint, so the log covers the whole run.
	if span := end.Sub(base); span < time.Duration(seconds)*time.Second {
		t.Errorf("%s: the safepoint log covers %v of a %d s run", class, span, seconds)
	}
	slices.Sort(totals)
	mean := stopped / time.Duration(len(totals))
	predicted, ok := cfg.TimeToTrigger(m.frac, mean)
	t.Logf("%s: %d safepoints, stopped %v of %v: %.1f%% of the time; pauses median %v, p99 %v, max %v; output: %q",
		class, len(recs), stopped.Round(time.Millisecond), end.Sub(base).Round(time.Millisecond), 100*m.frac,
		totals[len(totals)/2], totals[len(totals)*99/100], totals[len(totals)-1], j.Output())
	t.Logf("%s: detector %+v over=%v after %v; steady %.1f%% in %v pauses predicts %v (ok=%v)",
		class, cfg, m.over, m.overAfter.Round(time.Millisecond), 100*m.frac, mean, predicted.Round(time.Millisecond), ok)
	return m
}

func wait(t *testing.T, j *javatest.JVM, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := j.Wait(ctx); err != nil {
		t.Fatalf("java pid %d: %v", j.PID, err)
	}
}
