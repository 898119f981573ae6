// Package pagefault measures how long user threads stay blocked inside page
// faults, typically major faults reading an mmap'd file from a slow disk
// (bpf/pagefault.bpf.c explains the method and its limits), node-wide and
// per target. Major-fault counts from procfs give context, and stand alone
// where the BPF programs cannot run.
//
// With a sink configured, stalls at least Config.OutlierStall long are sent
// to it as outliers (flight.PageFaultEvent, with the file and offset the
// faulting address maps) by a reader goroutine that Close ends.
package pagefault

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/outlier"
	"github.com/nervehq/nerve/probes/targets"
)

// MaxTargets is how many targets the kernel side can tell apart.
const MaxTargets = 64

// NodeTarget is the target label of the node-wide series.
const NodeTarget = targets.Node

// Config names the targets to break the stalls down by, and where outliers go.
type Config struct {
	// Targets, Refresh and Resolver are those of targets.Options.
	Targets  []targets.Target
	Refresh  time.Duration
	Resolver targets.Resolver

	// Outliers receives every stall of at least OutlierStall, with the
	// thread and the file and offset it faulted on. nil turns the outlier
	// path off: the kernel compares against a stall no thread reaches and
	// no reader runs.
	Outliers flight.Sink
	// OutlierStall is the threshold; 0 means DefaultOutlierStall.
	OutlierStall time.Duration
	// OutlierRate is how many outliers per second each CPU lets through
	// (0: outlier.DefaultRate), OutlierBurst how many at once (0: the
	// rate); the kernel counts the rest in OutlierDrops.
	OutlierRate  int
	OutlierBurst int
}

// DefaultOutlierStall is the goals' memory_stall threshold
// (actuator/goals/default.yaml): a stall longer than a healthy p99.
const DefaultOutlierStall = 20 * time.Millisecond

func (c *Config) options() targets.Options {
	return targets.Options{Targets: c.Targets, Refresh: c.Refresh, Resolver: c.Resolver}
}

// outlierSettings are what load writes into the object.
func (c *Config) outlierSettings() (on bool, limit outlier.Limit, stall outlier.Threshold) {
	return c.Outliers != nil, outlier.Limit{Rate: c.OutlierRate, Burst: c.OutlierBurst},
		outlier.Threshold{Var: "outlier_stall_ns", D: c.OutlierStall}
}

// kernelObjects are the loaded maps, programs and links.
type kernelObjects struct {
	closer         func() error
	node, targets  *ebpf.Map
	cgroups, tgids *ebpf.Map
	outliers       *ebpf.Map // pagefault_outliers
	outlierDrops   *ebpf.Map
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
	out     *outlier.Reader // nil: no sink or no BPF
	proc    procfs.FS
	tracker *targets.Tracker
	once    sync.Once
}

// New attaches the programs, or runs on procfs major-fault counts alone when
// it cannot (Attached reports false).
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	opts := cfg.options()
	proc, err := opts.Defaults(MaxTargets)
	if err != nil {
		return nil, fmt.Errorf("pagefault: %w", err)
	}
	cfg.Refresh, cfg.Resolver = opts.Refresh, opts.Resolver
	if cfg.OutlierStall == 0 {
		cfg.OutlierStall = DefaultOutlierStall
	}
	p := &Probe{logger: logger, cfg: cfg, proc: proc}
	var cg, tg *ebpf.Map
	if err := outlier.Check(cfg.outlierSettings()); err != nil {
		return nil, fmt.Errorf("pagefault: %w", err)
	}
	if p.k, err = load(&cfg); err != nil {
		p.bpfErr = err
		logger.Warn("page-fault stall programs unavailable; only major-fault counts from procfs", "err", err)
	} else {
		cg, tg = p.k.cgroups, p.k.tgids
		if cfg.Outliers != nil {
			if p.out, err = p.startOutliers(); err != nil {
				p.k.close()
				return nil, fmt.Errorf("pagefault: %w", err)
			}
		}
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

// Close stops the outlier reader (outliers not yet read are dropped) and
// the target refresh, and detaches the programs.
func (p *Probe) Close() error {
	p.once.Do(func() {
		p.out.Close()
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
