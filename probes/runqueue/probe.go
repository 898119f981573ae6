// Package runqueue measures how long runnable tasks wait for a CPU: the
// signal that says whether more cores would help. It keeps a node-wide
// histogram and one per configured target (bpf/runqueue.bpf.c). Where the
// BPF programs cannot run it falls back to the kernel's schedstat totals
// through procfs, and says so in nerve_probe_attached and the log.
//
// With a sink configured, waits at least Config.OutlierDelay long are sent
// to it as outliers (flight.RunQueueEvent) by a reader goroutine that Close
// ends.
package runqueue

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

// Config names the targets to break the delay down by, and where outliers go.
type Config struct {
	// Targets, Refresh and Resolver are those of targets.Options.
	Targets  []targets.Target
	Refresh  time.Duration
	Resolver targets.Resolver

	// Outliers receives every wait of at least OutlierDelay, with the task
	// that waited and the one that ran instead. nil turns the outlier path
	// off: the kernel compares against a wait no task reaches and no
	// reader runs.
	Outliers flight.Sink
	// OutlierDelay is the threshold; 0 means DefaultOutlierDelay.
	OutlierDelay time.Duration
	// OutlierRate is how many outliers per second each CPU lets through
	// (0: outlier.DefaultRate), OutlierBurst how many at once (0: the
	// rate); the kernel counts the rest in OutlierDrops.
	OutlierRate  int
	OutlierBurst int
}

// DefaultOutlierDelay is the goals' cpu_overload threshold
// (actuator/goals/default.yaml): a wait longer than a healthy p99.
const DefaultOutlierDelay = 10 * time.Millisecond

func (c *Config) options() targets.Options {
	return targets.Options{Targets: c.Targets, Refresh: c.Refresh, Resolver: c.Resolver}
}

// Probe measures run-queue delay. Close it when done.
type Probe struct {
	logger  *slog.Logger
	cfg     Config
	objs    runqueueObjects
	links   []link.Link
	bpf     bool // false: schedstat fallback
	bpfErr  error
	out     *outlier.Reader // nil: no sink or no BPF
	proc    procfs.FS
	tracker *targets.Tracker
	closeMu sync.Once
}

// New loads and attaches the programs, or falls back to schedstat when the
// kernel cannot run them (then the returned probe still works and
// Attached reports false). An error means even the fallback is impossible.
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	opts := cfg.options()
	proc, err := opts.Defaults(MaxTargets)
	if err != nil {
		return nil, fmt.Errorf("runqueue: %w", err)
	}
	cfg.Refresh, cfg.Resolver = opts.Refresh, opts.Resolver
	if cfg.OutlierDelay == 0 {
		cfg.OutlierDelay = DefaultOutlierDelay
	}
	p := &Probe{logger: logger, cfg: cfg, proc: proc}
	spec, err := loadRunqueue()
	if err != nil {
		return nil, fmt.Errorf("runqueue: load spec: %w", err)
	}
	// A bad outlier setting is the caller's mistake, not the kernel's: fail.
	if err := outlier.Configure(spec, "runqueue_outliers", cfg.Outliers != nil,
		outlier.Limit{Rate: cfg.OutlierRate, Burst: cfg.OutlierBurst},
		outlier.Threshold{Var: "outlier_delay_ns", D: cfg.OutlierDelay}); err != nil {
		return nil, fmt.Errorf("runqueue: %w", err)
	}
	if err := p.load(spec); err != nil {
		p.detach()
		p.bpfErr = err
		logger.Warn("BPF run-queue programs unavailable; falling back to schedstat totals (no histograms)", "err", err)
	} else {
		p.bpf = true
		if cfg.Outliers != nil {
			if p.out, err = p.startOutliers(); err != nil {
				p.detach()
				return nil, fmt.Errorf("runqueue: %w", err)
			}
		}
	}
	var cg, tg *ebpf.Map
	if p.bpf {
		cg, tg = p.objs.TargetCgroups, p.objs.TargetTgids
	}
	p.tracker = targets.NewTracker(logger, cfg.Resolver, cfg.Targets, cfg.Refresh, cg, tg)
	logger.Info("started", "bpf", p.bpf, "targets", len(cfg.Targets))
	return p, nil
}

func (p *Probe) load(spec *ebpf.CollectionSpec) error {
	haveCgroup, haveTgid := targets.Kinds(p.cfg.Targets)
	if err := spec.Variables["have_cgroup_targets"].Set(haveCgroup); err != nil {
		return err
	}
	if err := spec.Variables["have_tgid_targets"].Set(haveTgid); err != nil {
		return err
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for name, prog := range p.programs() {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", name, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

func (p *Probe) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		"nrv_rq_wakeup":     p.objs.NrvRqWakeup,
		"nrv_rq_wakeup_new": p.objs.NrvRqWakeupNew,
		"nrv_rq_switch":     p.objs.NrvRqSwitch,
	}
}

// Programs returns the loaded programs by name (none in fallback mode).
func (p *Probe) Programs() map[string]*ebpf.Program {
	if !p.bpf {
		return nil
	}
	return p.programs()
}

// Attached says whether the BPF programs run (false: schedstat fallback).
func (p *Probe) Attached() bool { return p.bpf }

func (p *Probe) detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	p.objs.Close()
}

// Close stops the outlier reader (outliers not yet read are dropped) and
// the target refresh, and detaches the programs.
func (p *Probe) Close() error {
	p.closeMu.Do(func() {
		p.out.Close()
		if p.tracker != nil {
			p.tracker.Close()
		}
		p.detach()
	})
	return nil
}

// Delays is one read of the kernel histograms.
type Delays struct {
	Node    histogram.Hist
	Targets map[string]histogram.Hist // only targets that currently match something
}

// Read sums the per-CPU histograms.
func (p *Probe) Read() (*Delays, error) {
	if !p.bpf {
		return nil, errors.New("runqueue: BPF programs not attached")
	}
	d := &Delays{Targets: map[string]histogram.Hist{}}
	var err error
	if d.Node, err = histogram.ReadPerCPU(p.objs.RunqueueDelaySeconds, 0); err != nil {
		return nil, fmt.Errorf("runqueue: read node histogram: %w", err)
	}
	found := p.tracker.Current().Found
	for i, t := range p.cfg.Targets {
		if !found[i] {
			continue // exited or not started: no series
		}
		h, err := histogram.ReadPerCPU(p.objs.RunqueueTargetDelaySeconds, uint32(i))
		if err != nil {
			return nil, fmt.Errorf("runqueue: read target %q: %w", t.Name, err)
		}
		d.Targets[t.Name] = h
	}
	return d, nil
}

// Drops returns the events lost in the kernel, by reason.
func (p *Probe) Drops() (map[string]uint64, error) {
	out := map[string]uint64{"task_storage_full": 0}
	if !p.bpf {
		return out, nil
	}
	var perCPU []uint64
	if err := p.objs.RunqDrops.Lookup(uint32(runqueueRunqDropRUNQ_DROP_STORAGE), &perCPU); err != nil {
		return nil, fmt.Errorf("runqueue: read drops: %w", err)
	}
	for _, n := range perCPU {
		out["task_storage_full"] += n
	}
	return out, nil
}
