package probe

import "fmt"

// AttachMode says how the probe attaches its programs to HotSpot's USDT
// probes. It decides the capabilities the agent keeps while the probe runs.
type AttachMode string

const (
	// AttachAuto takes uprobe_multi where the kernel has it, classic
	// uprobes otherwise.
	AttachAuto AttachMode = "auto"
	// AttachUprobeMulti attaches one uprobe_multi link per program and
	// libjvm.so, over all its locations of the USDT probe (Linux 6.6). It
	// needs CAP_BPF and CAP_PERFMON.
	AttachUprobeMulti AttachMode = "uprobe_multi"
	// AttachUprobe attaches one classic uprobe (a perf event) per location.
	// It also needs CAP_SYS_ADMIN since the kernel fix "perf: Revert to
	// requiring CAP_SYS_ADMIN for uprobes" (ba677dbe77af).
	AttachUprobe AttachMode = "uprobe"
)

// check says what is wrong with a configured mode; "" counts as AttachAuto.
func (m AttachMode) check() error {
	switch m {
	case "", AttachAuto, AttachUprobeMulti, AttachUprobe:
		return nil
	}
	return fmt.Errorf("attach mode must be %s, %s or %s, got %q", AttachAuto, AttachUprobeMulti, AttachUprobe, string(m))
}
