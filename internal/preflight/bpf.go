package preflight

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/kernel"
)

// BPFFigures is what the kernel offers the probes.
type BPFFigures struct {
	Release string `json:"release"`
	// Features maps each kernel feature (btf, tp_btf, raw_tp, ringbuf,
	// task_storage, ...) to "yes" or "no: <why>".
	Features map[string]string `json:"features"`
	// Mode is how the block I/O probe attached (tp_btf or raw_tp), "" when
	// it could not; TagWaits whether it measures waits for a driver tag.
	Mode     string `json:"mode,omitempty"`
	TagWaits bool   `json:"tag_waits"`
}

// checkBPF detects the kernel's features and loads and attaches the block
// I/O probe for a moment: the check passes when the probe runs, since the
// slow_drive and disk_overload diagnoses rest on it. The other probes
// degrade on their own and do not fail the check.
func checkBPF(_ context.Context, logger *slog.Logger, cfg blockio.Config) Check {
	c := Check{Kind: "bpf", Target: "kernel", Goal: "block I/O probe runs"}
	if err := kernel.EnsureMounts(logger); err != nil {
		logger.Warn("cannot mount tracefs or bpffs", "err", err)
	}
	feats := kernel.Detect()
	f := &BPFFigures{Release: feats.Release, Features: map[string]string{}}
	for _, ft := range feats.All() {
		f.Features[ft.Name] = "yes"
		if !ft.OK() {
			f.Features[ft.Name] = "no: " + ft.Err.Error()
		}
	}
	c.BPF = f
	if !feats.BTF.OK() {
		c.Figure = "no BTF"
		c.fail("%v", kernel.CheckBTF())
		return c
	}
	p, err := blockio.New(logger.With("probe", "blockio"), cfg)
	if err != nil {
		c.Figure = fmt.Sprintf("kernel %s: probe failed", feats.Release)
		c.fail("block I/O probe cannot run on kernel %s: %v", feats.Release, err)
		return c
	}
	f.Mode, f.TagWaits = string(p.Mode()), p.TagWaits()
	if err := p.Close(); err != nil {
		logger.Warn("close block I/O probe", "err", err)
	}
	c.Figure = fmt.Sprintf("kernel %s: %s, ringbuf %s, task_storage %s, tag waits %s",
		feats.Release, f.Mode, yesNo(feats.RingBuf.OK()), yesNo(feats.TaskStorage.OK()), yesNo(f.TagWaits))
	c.Pass = true
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
