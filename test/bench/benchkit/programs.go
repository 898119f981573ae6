package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
)

// ProgStat is one entry of `bpftool prog show -j`. RunTimeNs and RunCnt are
// there only while kernel.bpf_stats_enabled is (or was) on.
type ProgStat struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
}

// ProgDelta is what one BPF program did while a load ran.
type ProgDelta struct {
	Name     string
	Runs, Ns uint64
}

// ProgSnapshot lists every BPF program loaded on the machine, by ID.
func ProgSnapshot(ctx context.Context) (map[uint32]ProgStat, error) {
	out, err := exec.CommandContext(ctx, "bpftool", "prog", "show", "-j").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", ExitDetail(err))
	}
	var progs []ProgStat
	if err := json.Unmarshal(out, &progs); err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	m := make(map[uint32]ProgStat, len(progs))
	for _, p := range progs {
		m[p.ID] = p
	}
	return m, nil
}

// Deltas is what each of the programs ids did between two snapshots, sorted
// by name.
func Deltas(ids map[uint32]bool, before, after map[uint32]ProgStat) []ProgDelta {
	var ds []ProgDelta
	for id := range ids {
		a, ok := after[id]
		if !ok {
			continue
		}
		b := before[id] // zero when loaded during the run
		ds = append(ds, ProgDelta{Name: a.Name, Runs: a.RunCnt - b.RunCnt, Ns: a.RunTimeNs - b.RunTimeNs})
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	return ds
}

// SumByProgram adds up the deltas of several runs program by program, keyed
// by name (programs of the same name in one run are added together too), and
// returns the sums sorted by name.
func SumByProgram(runs [][]ProgDelta) []ProgDelta {
	sums := map[string]*ProgDelta{}
	for _, ds := range runs {
		for _, d := range ds {
			s := sums[d.Name]
			if s == nil {
				s = &ProgDelta{Name: d.Name}
				sums[d.Name] = s
			}
			s.Runs += d.Runs
			s.Ns += d.Ns
		}
	}
	out := make([]ProgDelta, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TotalNs is the run time of all the programs together.
func TotalNs(ds []ProgDelta) uint64 {
	var ns uint64
	for _, d := range ds {
		ns += d.Ns
	}
	return ns
}
