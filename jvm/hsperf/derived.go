package hsperf

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Counter names the derived figures read. They have been stable since JDK 6.
const (
	NameFrequency         = "sun.os.hrt.frequency"
	NameSafepoints        = "sun.rt.safepoints"
	NameSafepointTime     = "sun.rt.safepointTime"
	NameSafepointSyncTime = "sun.rt.safepointSyncTime"

	collectorPrefix = "sun.gc.collector."
)

// long returns a scalar long counter in the given units. Torn or corrupt
// values show up as negative numbers, which no counter read here can hold.
func (s *Snapshot) long(name string, units Units) (int64, error) {
	e, ok := s.Entries[name]
	if !ok {
		return 0, fmt.Errorf("%s: %w", name, ErrNoCounter)
	}
	if e.Type != 'J' || e.IsString {
		return 0, fmt.Errorf("%s is of type %q, not a long: %w", name, e.Type, ErrNoCounter)
	}
	if e.Units != units {
		return 0, fmt.Errorf("%s is in %v, want %v: %w", name, e.Units, units, ErrNoCounter)
	}
	if e.Long < 0 {
		return 0, fmt.Errorf("%s is %d, below zero: %w", name, e.Long, ErrCorrupt)
	}
	return e.Long, nil
}

// Frequency returns the rate of the JVM's high-resolution clock in ticks per
// second (sun.os.hrt.frequency; 1e9 on Linux).
func (s *Snapshot) Frequency() (int64, error) {
	f, err := s.long(NameFrequency, UnitsHertz)
	if err != nil {
		return 0, err
	}
	if f == 0 {
		return 0, fmt.Errorf("%s is 0: %w", NameFrequency, ErrCorrupt)
	}
	return f, nil
}

// Safepoints returns how many safepoints the JVM has reached, the total time
// spent in them, and the part of it spent bringing threads to the safepoint
// (time to safepoint), all since the JVM started.
func (s *Snapshot) Safepoints() (count int64, totalSeconds, syncSeconds float64, err error) {
	freq, err := s.Frequency()
	if err != nil {
		return 0, 0, 0, err
	}
	count, err = s.long(NameSafepoints, UnitsEvents)
	if err != nil {
		return 0, 0, 0, err
	}
	total, err := s.long(NameSafepointTime, UnitsTicks)
	if err != nil {
		return 0, 0, 0, err
	}
	sync, err := s.long(NameSafepointSyncTime, UnitsTicks)
	if err != nil {
		return 0, 0, 0, err
	}
	return count, float64(total) / float64(freq), float64(sync) / float64(freq), nil
}

// Collector is one of the JVM's collector counter sets
// (sun.gc.collector.<N>.*). For G1 these are 0 young pauses, 1 full pauses,
// 2 remark and cleanup pauses of the concurrent cycle.
type Collector struct {
	Index       int
	Name        string // sun.gc.collector.<N>.name, "" if absent
	Invocations int64
	Seconds     float64
}

// Collectors returns every collector that has both an invocations and a
// time counter, ordered by index.
func (s *Snapshot) Collectors() ([]Collector, error) {
	freq, err := s.Frequency()
	if err != nil {
		return nil, err
	}
	var cs []Collector
	for name := range s.Entries {
		rest, ok := strings.CutPrefix(name, collectorPrefix)
		if !ok {
			continue
		}
		idx, ok := strings.CutSuffix(rest, ".invocations")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 || strconv.Itoa(n) != idx {
			continue // not sun.gc.collector.<N>.invocations
		}
		prefix := collectorPrefix + idx + "."
		inv, err := s.long(name, UnitsEvents)
		if err != nil {
			return nil, err
		}
		ticks, err := s.long(prefix+"time", UnitsTicks)
		if err != nil {
			return nil, err
		}
		c := Collector{Index: n, Invocations: inv, Seconds: float64(ticks) / float64(freq)}
		if e := s.Entries[prefix+"name"]; e.IsString {
			c.Name = e.String
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s<N>.invocations: %w", collectorPrefix, ErrNoCounter)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Index < cs[j].Index })
	return cs, nil
}

// GCTime returns the number of collections and the time spent in them since
// the JVM started, summed over all collectors.
func (s *Snapshot) GCTime() (collections int64, seconds float64, err error) {
	cs, err := s.Collectors()
	if err != nil {
		return 0, 0, err
	}
	for _, c := range cs {
		if c.Invocations > math.MaxInt64-collections {
			return 0, 0, fmt.Errorf("%s%d.invocations: sum overflows: %w", collectorPrefix, c.Index, ErrCorrupt)
		}
		collections += c.Invocations
		seconds += c.Seconds
	}
	return collections, seconds, nil
}
