package flight

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Text is the readable form of a report, as `nerve report` prints it: the
// window and the recorder's counts, then each signal's top processes,
// devices, files, VM operations and what ran instead, then the slowest
// raw events (at most slowest of them).
func Text(r Report, slowest int) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	if r.Decision != "" {
		line("incident %s: %s on %s, diagnosed %s, decided %s", r.Decision, r.Kind, r.Subject, stamp(r.DiagnosedAt), stamp(r.Filter.Until))
	}
	f := r.Filter
	window := fmt.Sprintf("outliers from %s to %s", stamp(f.Since), stamp(f.Until))
	if !f.Since.IsZero() && !f.Until.IsZero() {
		window += fmt.Sprintf(" (%s)", f.Until.Sub(f.Since).Round(time.Second))
	}
	var only []string
	if f.PID != 0 {
		only = append(only, fmt.Sprintf("pid %d", f.PID))
	}
	if f.Device != "" {
		only = append(only, "device "+f.Device)
	}
	if f.Signal != "" {
		only = append(only, "signal "+string(f.Signal))
	}
	if len(only) > 0 {
		window += ", " + strings.Join(only, ", ")
	}
	line("%s", window)
	line("recorder: up to %d outliers per signal for %s; taken %s", r.Recorder.MaxEvents, r.Recorder.MaxAge, stamp(r.At))
	line("")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "signal\toutliers\tmax\tp99\theld\tdropped: rate_limited\tlost\tring_full")
	for _, s := range Signals {
		ss, _ := r.Summary.Signal(s)
		c := r.Recorder.Counts[s]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", s, ss.Count, dur(ss.Max), dur(ss.P99), c.Held, c.RateLimited, c.Lost, c.RingFull)
	}
	tw.Flush()
	var dropped uint64
	for _, c := range r.Recorder.Counts {
		dropped += c.Dropped()
	}
	if dropped > 0 {
		line("(outliers were dropped since the agent started: the window may be missing some)")
	}

	for _, ss := range r.Summary.Signals {
		line("")
		line("== %s: %d outliers, total %s, max %s, p99 %s", ss.Signal, ss.Count, dur(ss.Total), dur(ss.Max), dur(ss.P99))
		procs(&b, "processes by total latency", ss.ProcessesByLatency)
		if !sameProcs(ss.ProcessesByLatency, ss.ProcessesByCount) {
			procs(&b, "processes by count", ss.ProcessesByCount)
		}
		keys(&b, "devices", ss.Devices)
		keys(&b, "files", ss.Files)
		keys(&b, "VM operations", ss.VMOperations)
		procs(&b, "ran instead (held the CPU the waiting task got)", ss.RanInstead)
	}

	if slowest > 0 && len(r.Events) > 0 {
		es := slices.Clone(r.Events)
		slices.SortStableFunc(es, func(a, b Event) int { return int(b.Latency - a.Latency) })
		n := min(slowest, len(es))
		line("")
		line("slowest outliers (%d of %d):", n, r.Matched)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, e := range es[:n] {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tpid %d\t%s\t%s\n", e.Time.UTC().Format("15:04:05.000"), e.Signal, round(e.Latency), e.PID, e.Comm, what(e))
		}
		tw.Flush()
	}
	return b.String()
}

func procs(b *strings.Builder, title string, ps []ProcessStat) {
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(b, "  %s:\n", title)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, p := range ps {
		cg := p.Cgroup
		if cg == "" {
			cg = "-"
		}
		fmt.Fprintf(tw, "    pid %d\t%s\t%s\t%d outliers\ttotal %s\tmax %s\n", p.PID, p.Comm, cg, p.Count, dur(p.Total), dur(p.Max))
	}
	tw.Flush()
}

func sameProcs(a, b []ProcessStat) bool {
	return slices.EqualFunc(a, b, func(x, y ProcessStat) bool { return x.PID == y.PID && x.Comm == y.Comm })
}

func keys(b *strings.Builder, title string, ks []KeyStat) {
	if len(ks) == 0 {
		return
	}
	fmt.Fprintf(b, "  %s:\n", title)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, k := range ks {
		name := k.Name
		if name == "" {
			name = "(anonymous memory)"
			if title == "VM operations" {
				name = "(unknown)"
			}
		}
		fmt.Fprintf(tw, "    %s\t%d outliers\ttotal %s\tmax %s\n", name, k.Count, dur(k.Total), dur(k.Max))
	}
	tw.Flush()
}

// what is the signal's own part of an event, in a few words.
func what(e Event) string {
	switch {
	case e.Block != nil:
		k := e.Block
		return fmt.Sprintf("%s %s %d bytes at sector %d: service %s, queue %s, %d in flight", k.Device, k.Op, k.Bytes, k.Sector, round(k.Service), round(k.Queue), k.Inflight)
	case e.RunQueue != nil:
		return fmt.Sprintf("cpu %d: waited behind pid %d %s", e.RunQueue.CPU, e.RunQueue.PrevPID, e.RunQueue.PrevComm)
	case e.PageFault != nil:
		if e.PageFault.File == "" {
			return fmt.Sprintf("anonymous memory at %#x", e.PageFault.Address)
		}
		return fmt.Sprintf("%s offset %d", e.PageFault.File, e.PageFault.Offset)
	case e.Safepoint != nil:
		return fmt.Sprintf("JVM %s: %s, time to safepoint %s", e.Safepoint.JVM, e.Safepoint.VMOperation, round(e.Safepoint.TimeToSafepoint))
	}
	return ""
}

// dur shows a figure of a summary: "-" when there is none.
func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return round(d)
}

// round shows a latency rounded to what matters: µs under a millisecond.
func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
