package benchkit

import (
	"fmt"
	"os"
)

// StatsSysctl is kernel.bpf_stats_enabled. While it is on, the kernel counts
// each BPF program's runs and run time; it costs a clock read per run, so a
// benchmark turns it on only while a tracer runs.
const StatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// BPFStats remembers kernel.bpf_stats_enabled as it was before a benchmark,
// so that each run can turn it on and put it back.
type BPFStats struct {
	old []byte
}

// SaveBPFStats reads the current value of kernel.bpf_stats_enabled.
func SaveBPFStats() (*BPFStats, error) {
	old, err := os.ReadFile(StatsSysctl)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StatsSysctl, err)
	}
	return &BPFStats{old: old}, nil
}

// Enable turns the statistics on.
func (s *BPFStats) Enable() error {
	if err := os.WriteFile(StatsSysctl, []byte("1\n"), 0); err != nil {
		return fmt.Errorf("enable bpf stats: %w", err)
	}
	return nil
}

// Restore puts back the value SaveBPFStats read.
func (s *BPFStats) Restore() error {
	if err := os.WriteFile(StatsSysctl, s.old, 0); err != nil {
		return fmt.Errorf("restore %s: %w", StatsSysctl, err)
	}
	return nil
}
