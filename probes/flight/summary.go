package flight

import (
	"cmp"
	"slices"
	"time"
)

// TopN is how many entries each top list of a Summary has at most.
const TopN = 10

// Summary is what a set of outliers says, signal by signal: who suffered
// and where.
type Summary struct {
	// Signals lists the signals with at least one event, in Signals order.
	Signals []SignalSummary `json:"signals"`
}

// Signal returns the summary of s, and false when there is none.
func (s Summary) Signal(sig Signal) (SignalSummary, bool) {
	for _, x := range s.Signals {
		if x.Signal == sig {
			return x, true
		}
	}
	return SignalSummary{}, false
}

// SignalSummary is one signal's outliers.
type SignalSummary struct {
	Signal Signal        `json:"signal"`
	Count  int           `json:"count"`
	Total  time.Duration `json:"total_ns"` // the latencies added up
	Max    time.Duration `json:"max_ns"`
	P99    time.Duration `json:"p99_ns"` // nearest rank
	// Processes that suffered, by total latency and by count (pid, comm,
	// cgroup).
	ProcessesByLatency []ProcessStat `json:"processes_by_latency"`
	ProcessesByCount   []ProcessStat `json:"processes_by_count"`
	// Devices (block I/O), Files (page faults: the mapped file, "" for
	// anonymous memory), VMOperations (safepoints), by total latency.
	Devices      []KeyStat `json:"devices,omitempty"`
	Files        []KeyStat `json:"files,omitempty"`
	VMOperations []KeyStat `json:"vm_operations,omitempty"`
	// RanInstead (run queue) are the tasks that held the CPU when the
	// waiting task got it, by total wait they preceded.
	RanInstead []ProcessStat `json:"ran_instead,omitempty"`
}

// ProcessStat is a process's share of a signal's outliers.
type ProcessStat struct {
	PID    int           `json:"pid"`
	Comm   string        `json:"comm"`
	Cgroup string        `json:"cgroup,omitempty"`
	Count  int           `json:"count"`
	Total  time.Duration `json:"total_ns"`
	Max    time.Duration `json:"max_ns"`
}

// KeyStat is one device's, file's or VM operation's share.
type KeyStat struct {
	Name  string        `json:"name"`
	Count int           `json:"count"`
	Total time.Duration `json:"total_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarise summarises events (in any order).
func Summarise(events []Event) Summary {
	bySignal := map[Signal][]*Event{}
	for i := range events {
		e := &events[i]
		bySignal[e.Signal] = append(bySignal[e.Signal], e)
	}
	s := Summary{Signals: []SignalSummary{}}
	for _, sig := range Signals {
		if es := bySignal[sig]; len(es) > 0 {
			s.Signals = append(s.Signals, summariseSignal(sig, es))
		}
	}
	return s
}

type procKey struct {
	pid  int
	comm string
}

func summariseSignal(sig Signal, es []*Event) SignalSummary {
	out := SignalSummary{Signal: sig, Count: len(es)}
	lat := make([]time.Duration, len(es))
	procs := map[procKey]*ProcessStat{}
	prev := map[procKey]*ProcessStat{}
	devices, files, ops := map[string]*KeyStat{}, map[string]*KeyStat{}, map[string]*KeyStat{}
	for i, e := range es {
		lat[i] = e.Latency
		out.Total += e.Latency
		out.Max = max(out.Max, e.Latency)
		addProc(procs, e.PID, e.Comm, e.Cgroup, e.Latency)
		switch {
		case e.Block != nil:
			addKey(devices, e.Block.Device, e.Latency)
		case e.PageFault != nil:
			addKey(files, e.PageFault.File, e.Latency)
		case e.Safepoint != nil:
			addKey(ops, e.Safepoint.VMOperation, e.Latency)
		case e.RunQueue != nil:
			addProc(prev, e.RunQueue.PrevPID, e.RunQueue.PrevComm, "", e.Latency)
		}
	}
	slices.Sort(lat)
	// Nearest rank: the smallest value at or above 99% of the events.
	rank := (99*len(lat) + 99) / 100
	out.P99 = lat[max(rank, 1)-1]

	out.ProcessesByLatency = topProcs(procs, byLatency)
	out.ProcessesByCount = topProcs(procs, byCount)
	out.RanInstead = nilIfEmpty(topProcs(prev, byLatency))
	out.Devices = topKeys(devices)
	out.Files = topKeys(files)
	out.VMOperations = topKeys(ops)
	return out
}

func addProc(m map[procKey]*ProcessStat, pid int, comm, cgroup string, lat time.Duration) {
	k := procKey{pid, comm}
	p := m[k]
	if p == nil {
		p = &ProcessStat{PID: pid, Comm: comm, Cgroup: cgroup}
		m[k] = p
	}
	p.Count++
	p.Total += lat
	p.Max = max(p.Max, lat)
	if p.Cgroup == "" {
		p.Cgroup = cgroup
	}
}

func addKey(m map[string]*KeyStat, name string, lat time.Duration) {
	k := m[name]
	if k == nil {
		k = &KeyStat{Name: name}
		m[name] = k
	}
	k.Count++
	k.Total += lat
	k.Max = max(k.Max, lat)
}

func byLatency(a, b *ProcessStat) int {
	return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(b.Count, a.Count), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Comm, b.Comm))
}

func byCount(a, b *ProcessStat) int {
	return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(b.Total, a.Total), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Comm, b.Comm))
}

func topProcs(m map[procKey]*ProcessStat, order func(a, b *ProcessStat) int) []ProcessStat {
	ps := make([]*ProcessStat, 0, len(m))
	for _, p := range m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, order)
	out := make([]ProcessStat, 0, min(len(ps), TopN))
	for _, p := range ps[:min(len(ps), TopN)] {
		out = append(out, *p)
	}
	return out
}

func topKeys(m map[string]*KeyStat) []KeyStat {
	if len(m) == 0 {
		return nil
	}
	ks := make([]*KeyStat, 0, len(m))
	for _, k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b *KeyStat) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name))
	})
	out := make([]KeyStat, 0, min(len(ks), TopN))
	for _, k := range ks[:min(len(ks), TopN)] {
		out = append(out, *k)
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// Slowest returns, of each signal, the limit slowest events (all when
// limit <= 0), in time order, and how many it left out.
func Slowest(events []Event, limit int) (kept []Event, left int) {
	if limit <= 0 {
		return events, 0
	}
	bySignal := map[Signal][]Event{}
	for _, e := range events {
		bySignal[e.Signal] = append(bySignal[e.Signal], e)
	}
	kept = make([]Event, 0, min(len(events), limit*len(bySignal)))
	for _, es := range bySignal {
		if len(es) > limit {
			slices.SortStableFunc(es, func(a, b Event) int { return cmp.Compare(b.Latency, a.Latency) })
			left += len(es) - limit
			es = es[:limit]
		}
		kept = append(kept, es...)
	}
	slices.SortStableFunc(kept, func(a, b Event) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Signal, b.Signal))
	})
	return kept, left
}
