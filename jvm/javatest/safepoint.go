package javatest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// SafepointRecord is one line of HotSpot's unified safepoint log
// (-Xlog:safepoint, info level), written at the end of each safepoint.
// Java 17 writes
//
//	[0.191s][info][safepoint] Safepoint "G1CollectFull", Time since last: 51902247 ns, Reaching safepoint: 3036 ns, Cleanup: 4318 ns, At safepoint: 35561628 ns, Total: 35568982 ns
//
// and Total = Reaching + Cleanup + AtSafepoint. Newer JDKs (the current
// openjdk/jdk source) write no Cleanup field, Reaching including it; it then
// reads as 0.
type SafepointRecord struct {
	// Uptime is the JVM uptime when the line was logged, from an uptime
	// decoration ([0.191s], [191ms] or [191000000ns]; the first one wins),
	// or 0 when the line has none. The default decoration has millisecond
	// resolution only.
	Uptime time.Duration
	// Operation is the VM operation that needed the safepoint, like
	// "G1CollectForAllocation" or "ThreadDump".
	Operation string
	// SinceLast is how long the JVM ran between the end of the previous
	// safepoint (or the start of the JVM) and the start of this one: its own
	// account of application time, in nanoseconds.
	SinceLast time.Duration
	// Reaching is the time to safepoint: from the request until every Java
	// thread had stopped.
	Reaching time.Duration
	// Cleanup is the safepoint cleanup time, where the JVM logs it.
	Cleanup time.Duration
	// AtSafepoint is the time the operation itself took.
	AtSafepoint time.Duration
	// Total is the whole stop, from the request to the release of threads.
	Total time.Duration
}

// MaxLine is the longest log line ParseSafepointLog reads; a longer one is
// an error rather than unbounded memory.
const MaxLine = 64 << 10

const safepointPrefix = `Safepoint "`

// ParseSafepointLog reads a unified logging file and returns its safepoint
// records in file order. Lines that are not safepoint records (other tags
// such as safepoint+stats, other messages, blank lines) are skipped, whatever
// decorations the log was configured with. A safepoint record it cannot read
// is an error naming the line, except when it is the last line and has no
// newline: that is a line the JVM was still writing (or was killed while
// writing), and it is left out.
func ParseSafepointLog(r io.Reader) ([]SafepointRecord, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLine)
	complete := true // whether the current line ended with a newline
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		complete = !(atEOF && tok != nil && bytes.IndexByte(data[:adv], '\n') < 0)
		return adv, tok, err
	})
	var recs []SafepointRecord
	for n := 1; sc.Scan(); n++ {
		rec, ok, err := parseSafepointLine(sc.Text())
		switch {
		case err != nil && !complete:
			// A partial last line.
		case err != nil:
			return recs, fmt.Errorf("line %d: %w", n, err)
		case ok:
			recs = append(recs, rec)
		}
	}
	if err := sc.Err(); err != nil {
		return recs, fmt.Errorf("read safepoint log: %w", err)
	}
	return recs, nil
}

// parseSafepointLine returns ok=false, without error, for a line that is
// not a safepoint record.
func parseSafepointLine(line string) (rec SafepointRecord, ok bool, err error) {
	// Decorations: [..][..] before the message, each trimmed of the padding
	// HotSpot adds to align them.
	rest := line
	uptimeSeen := false
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return rec, false, nil
		}
		if d, ok := parseUptime(strings.TrimSpace(rest[1:end])); ok && !uptimeSeen {
			rec.Uptime, uptimeSeen = d, true
		}
		rest = rest[end+1:]
	}
	msg, found := strings.CutPrefix(strings.TrimLeft(rest, " "), safepointPrefix)
	if !found {
		return rec, false, nil
	}
	op, fields, found := strings.Cut(msg, `"`)
	if !found || op == "" {
		return rec, false, fmt.Errorf("safepoint record without a quoted operation: %q", line)
	}
	rec.Operation = op
	fields, found = strings.CutPrefix(fields, ", ")
	if !found {
		return rec, false, fmt.Errorf("safepoint %q: no fields after the operation", op)
	}
	seen := map[string]bool{}
	for field := range strings.SplitSeq(fields, ", ") {
		key, val, found := strings.Cut(field, ": ")
		if !found {
			return rec, false, fmt.Errorf("safepoint %q: field %q is not \"name: value\"", op, field)
		}
		num, found := strings.CutSuffix(val, " ns")
		if !found {
			return rec, false, fmt.Errorf("safepoint %q: %s: value %q is not in ns", op, key, val)
		}
		ns, err := strconv.ParseInt(num, 10, 64)
		if err != nil || ns < 0 {
			return rec, false, fmt.Errorf("safepoint %q: %s: %q is not a non-negative count of ns", op, key, num)
		}
		if seen[key] {
			return rec, false, fmt.Errorf("safepoint %q: %s given twice", op, key)
		}
		seen[key] = true
		d := time.Duration(ns)
		switch key {
		case "Time since last":
			rec.SinceLast = d
		case "Reaching safepoint":
			rec.Reaching = d
		case "Cleanup":
			rec.Cleanup = d
		case "At safepoint":
			rec.AtSafepoint = d
		case "Total":
			rec.Total = d
		}
		// Other fields are a newer JVM's additions, which no caller needs yet.
	}
	if !seen["Total"] {
		return rec, false, fmt.Errorf("safepoint %q: no Total", op)
	}
	return rec, true, nil
}

// parseUptime reads the uptime decorations: uptime ("0.191s"),
// uptimemillis ("191ms") and uptimenanos ("191000000ns"). Anything else
// (level, tags, pid, a date) is not an uptime.
func parseUptime(s string) (time.Duration, bool) {
	intIn := func(num string, unit time.Duration) (time.Duration, bool) {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(unit) {
			return 0, false
		}
		return time.Duration(n) * unit, true
	}
	if num, ok := strings.CutSuffix(s, "ns"); ok {
		return intIn(num, time.Nanosecond)
	}
	if num, ok := strings.CutSuffix(s, "ms"); ok {
		return intIn(num, time.Millisecond)
	}
	num, ok := strings.CutSuffix(s, "s")
	// Digits and one point only, so that "Infs" or "1e3s" are not uptimes.
	if !ok || num == "" || strings.Trim(num, "0123456789.") != "" || strings.Count(num, ".") > 1 {
		return 0, false
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*1e9 >= math.MaxInt64 {
		return 0, false
	}
	return time.Duration(math.Round(f * 1e9)), true
}

// StoppedFraction is the share of the JVM's time spent in safepoints over
// the records, by the JVM's own clock: Total over Total plus SinceLast,
// which runs from the JVM's start (or the first record's predecessor, for a
// partial log) to the end of the last safepoint. It is 0 for no records.
func StoppedFraction(recs []SafepointRecord) float64 {
	var stopped, running float64
	for _, r := range recs {
		stopped += float64(r.Total)
		running += float64(r.SinceLast)
	}
	if stopped+running == 0 {
		return 0
	}
	return stopped / (stopped + running)
}
