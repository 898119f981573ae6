// Package pagefault measures how long user threads stay blocked inside page
// faults, typically major faults reading an mmap'd file from a slow disk
// (bpf/pagefault.bpf.c explains the method and its limits), node-wide and
// per target. Major-fault counts from procfs give context, and stand alone
// where the BPF programs cannot run.
package pagefault

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/targets"
)

// MaxTargets is how many targets the kernel side can tell apart.
const MaxTargets = 64

// NodeTarget is the target label of the node-wide series.
const NodeTarget = targets.Node

// Config names the targets to break the stalls down by.
type Config = targets.Options

// kernelObjects are the loaded maps, programs and links.
type kernelObjects struct {
	closer         func() error
	node, targets  *ebpf.Map
	cgroups, tgids *ebpf.Map
	progs          map[string]*ebpf.Program
	links          []link.Link
}

func (k *kernelObjects) close() {
	for _, l := range k.links {
		l.Close()
	}
	k.closer()
}

// Probe measures page-fault stalls. Close it when done.
type Probe struct {
	logger  *slog.Logger
	cfg     Config
	k       *kernelObjects // nil: BPF unavailable
	bpfErr  error
	proc    procfs.FS
	tracker *targets.Tracker
	once    sync.Once
}

// New attaches the programs, or runs on procfs major-fault counts alone when
// it cannot (Attached reports false).
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	proc, err := cfg.Defaults(MaxTargets)
	if err != nil {
		return nil, fmt.Errorf("pagefault: %w", err)
	}
	p := &Probe{logger: logger, cfg: cfg, proc: proc}
	var cg, tg *ebpf.Map
	if p.k, err = load(targets.Kinds(cfg.Targets)); err != nil {
		p.bpfErr = err
		logger.Warn("page-fault stall programs unavailable; only major-fault counts from procfs", "err", err)
	} else {
		cg, tg = p.k.cgroups, p.k.tgids
	}
	p.tracker = targets.NewTracker(logger, cfg.Resolver, cfg.Targets, cfg.Refresh, cg, tg)
	return p, nil
}

// Attached says whether the BPF programs run.
func (p *Probe) Attached() bool { return p.k != nil }

// Programs returns the loaded programs by name.
func (p *Probe) Programs() map[string]*ebpf.Program {
	if p.k == nil {
		return nil
	}
	return p.k.progs
}

// Close stops the target refresh and detaches the programs.
func (p *Probe) Close() error {
	p.once.Do(func() {
		p.tracker.Close()
		if p.k != nil {
			p.k.close()
		}
	})
	return nil
}

// Stalls is one read of the kernel histograms.
type Stalls struct {
	Node    histogram.Hist
	Targets map[string]histogram.Hist // only targets that currently match something
}

// Read sums the per-CPU histograms.
func (p *Probe) Read() (*Stalls, error) {
	if p.k == nil {
		return nil, errors.New("pagefault: BPF programs not attached")
	}
	s := &Stalls{Targets: map[string]histogram.Hist{}}
	var err error
	if s.Node, err = histogram.ReadPerCPU(p.k.node, 0); err != nil {
		return nil, fmt.Errorf("pagefault: read node histogram: %w", err)
	}
	found := p.tracker.Current().Found
	for i, t := range p.cfg.Targets {
		if !found[i] {
			continue
		}
		h, err := histogram.ReadPerCPU(p.k.targets, uint32(i))
		if err != nil {
			return nil, fmt.Errorf("pagefault: read target %q: %w", t.Name, err)
		}
		s.Targets[t.Name] = h
	}
	return s, nil
}
