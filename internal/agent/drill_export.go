package agent

// What `nerve drill` (internal/drill) shares with the agent: the sampler that
// turns probe readings into the actuator's Sample, and the action catalog,
// so that a drill judges with exactly the agent's code.

import (
	"context"
	"time"

	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/canary"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/pagefault"
	"github.com/nervehq/nerve/probes/runqueue"
)

// SamplerProbes are probes started outside an agent. Any may be nil.
type SamplerProbes struct {
	BlockIO   *blockio.Probe
	RunQueue  *runqueue.Probe
	PageFault *pagefault.Probe
	JVM       *probe.Probe
	// Target is the target whose run-queue and page-fault figures count;
	// "" = the node's.
	Target string
}

// Sampler is the agent's sampler over probes the caller started and closes.
// Like the agent's, it is not safe for concurrent use.
type Sampler struct{ s *sampler }

// NewSampler returns a sampler over p, with no data mounts (no canary).
func NewSampler(p SamplerProbes) *Sampler {
	s := &sampler{block: p.BlockIO, jvm: p.JVM, target: p.Target, canary: canary.New(time.Second)}
	s.proc, _ = procfs.NewDefaultFS()
	if p.RunQueue != nil && p.RunQueue.Attached() {
		s.runq = p.RunQueue
	}
	if p.PageFault != nil && p.PageFault.Attached() {
		s.pf = p.PageFault
	}
	return &Sampler{s: s}
}

// Sample reads the probes; the first call only sets the baseline.
func (s *Sampler) Sample(ctx context.Context, now time.Time) actuator.Sample {
	return s.s.sample(ctx, now)
}

// ActionInfos is the agent's action ladder as ac configures it: each
// action's name, rung, what it clears, and whether it is available.
func ActionInfos(ac config.Actuator) []ladder.ActionInfo {
	acts := catalog(ac)
	out := make([]ladder.ActionInfo, len(acts))
	for i, a := range acts {
		out[i] = a.Info
	}
	return out
}
