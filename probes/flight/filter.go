package flight

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter picks events. A zero field matches everything.
type Filter struct {
	Since  time.Time `json:"since,omitzero"` // events that ended at or after
	Until  time.Time `json:"until,omitzero"` // events that ended at or before
	PID    int       `json:"pid,omitempty"`  // the process that suffered it
	Device string    `json:"device,omitempty"`
	Signal Signal    `json:"signal,omitempty"`
}

// Match reports whether f picks e. A Device picks block I/O events on that
// device only: no other signal has a device.
func (f Filter) Match(e *Event) bool {
	switch {
	case f.Signal != "" && e.Signal != f.Signal,
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && e.Time.After(f.Until),
		f.PID != 0 && e.PID != f.PID,
		f.Device != "" && (e.Block == nil || e.Block.Device != f.Device):
		return false
	}
	return true
}

// ParamError is a query parameter that does not parse; HTTP handlers answer
// it with a 400 that names Param.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

// Query limits.
const (
	DefaultLimit = 1000
	MaxLimit     = 100000
)

// Query is a request for a window of the recorder, as GET /incidents/live
// and `nerve report` make it.
type Query struct {
	Filter
	// Limit is how many raw events of each signal to return: the slowest.
	// The summary covers every event matched.
	Limit int
}

// ParseQuery reads a Query from URL parameters:
//
//	since   a duration before now (10m, 90s) or an RFC 3339 time; default: everything held
//	until   the same; default: now
//	pid     a process id (1 or more)
//	device  a block device name (sda, nvme0n1, loop3)
//	signal  blockio, runqueue, pagefault or safepoint
//	limit   raw events per signal, 1 to MaxLimit; default DefaultLimit
//
// An unknown parameter is an error too, so that a typo is not a silent
// "everything". The error is a *ParamError.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	q := Query{Limit: DefaultLimit}
	for k := range v {
		switch k {
		case "since", "until", "pid", "device", "signal", "limit":
		case "":
			return Query{}, &ParamError{Param: `""`, Msg: "a parameter without a name"}
		default:
			return Query{}, &ParamError{Param: k, Msg: "unknown parameter; want since, until, pid, device, signal or limit"}
		}
		if len(v[k]) > 1 {
			return Query{}, &ParamError{Param: k, Msg: "given more than once"}
		}
	}
	var err error
	if s := v.Get("since"); s != "" {
		if q.Since, err = parseTime(s, now); err != nil {
			return Query{}, &ParamError{Param: "since", Msg: err.Error()}
		}
	}
	if s := v.Get("until"); s != "" {
		if q.Until, err = parseTime(s, now); err != nil {
			return Query{}, &ParamError{Param: "until", Msg: err.Error()}
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return Query{}, &ParamError{Param: "until", Msg: fmt.Sprintf("%s is before since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))}
	}
	if s := v.Get("pid"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1<<22 {
			return Query{}, &ParamError{Param: "pid", Msg: fmt.Sprintf("%q: want a process id from 1 to %d", s, 1<<22)}
		}
		q.PID = n
	}
	if s := v.Get("device"); s != "" {
		if err := CheckDevice(s); err != nil {
			return Query{}, &ParamError{Param: "device", Msg: err.Error()}
		}
		q.Device = s
	}
	if s := v.Get("signal"); s != "" {
		if !slices.Contains(Signals, Signal(s)) {
			return Query{}, &ParamError{Param: "signal", Msg: fmt.Sprintf("%q: want one of %s", s, signalList())}
		}
		q.Signal = Signal(s)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, &ParamError{Param: "limit", Msg: fmt.Sprintf("%q: want a number from 1 to %d", s, MaxLimit)}
		}
		q.Limit = n
	}
	return q, nil
}

// Values is the inverse of ParseQuery, with times as RFC 3339.
func (q Query) Values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.PID != 0 {
		v.Set("pid", strconv.Itoa(q.PID))
	}
	if q.Device != "" {
		v.Set("device", q.Device)
	}
	if q.Signal != "" {
		v.Set("signal", string(q.Signal))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// parseTime reads a duration before now or an RFC 3339 time.
func parseTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: want a duration before now, not a negative one", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a duration before now (10m) or an RFC 3339 time (2025-03-04T05:00:00Z)", s)
	}
	return t, nil
}

// CheckDevice checks a block device name as the kernel and /sys/block
// spell them: letters, digits, '-', '_', '.', ':', '!' (a '/' in a
// kernel name), at most MaxDeviceLen bytes.
func CheckDevice(s string) error {
	if s == "" || len(s) > MaxDeviceLen || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:!", r))
	}) >= 0 || s == "." || s == ".." {
		return fmt.Errorf("%q: want a block device name like sda, nvme0n1 or loop3", s)
	}
	return nil
}

func signalList() string {
	names := make([]string, len(Signals))
	for i, s := range Signals {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
