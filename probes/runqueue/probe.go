// Package runqueue measures how long runnable tasks wait for a CPU: the
// signal that says whether more cores would help. It keeps a node-wide
// histogram and one per configured target (bpf/runqueue.bpf.c). Where the
// BPF programs cannot run it falls back to the kernel's schedstat totals
// through procfs, and says so in nerve_probe_attached and the log.
package runqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/targets"
)

// MaxTargets is how many targets the kernel side can tell apart.
const MaxTargets = 64

// NodeTarget is the target label of the node-wide series; no configured
// target may use it.
const NodeTarget = "node"

// Config names the targets to break the delay down by.
type Config struct {
	Targets []targets.Target
	// Refresh is how often targets are resolved again (new processes,
	// restarted units); 0 means 2 s.
	Refresh time.Duration
	// Resolver reads cgroupfs and procfs; zero means the host's.
	Resolver targets.Resolver
}

// Probe measures run-queue delay. Close it when done.
type Probe struct {
	logger  *slog.Logger
	cfg     Config
	objs    runqueueObjects
	links   []link.Link
	bpf     bool // false: schedstat fallback
	bpfErr  error
	proc    procfs.FS
	cancel  context.CancelFunc
	done    chan struct{}
	closeMu sync.Once

	mu    sync.Mutex   // guards found
	found []bool       // per target: matched something at the last refresh
	set   *targets.Set // guarded by mu: the last resolution
}

// New loads and attaches the programs, or falls back to schedstat when the
// kernel cannot run them (then the returned probe still works and
// Attached reports false). An error means even the fallback is impossible.
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	logger = logger.With("probe", "runqueue")
	if err := targets.ValidateAll(cfg.Targets, MaxTargets); err != nil {
		return nil, fmt.Errorf("runqueue: %w", err)
	}
	for i, t := range cfg.Targets {
		if t.Name == NodeTarget {
			return nil, fmt.Errorf("runqueue: targets[%d]: name %q is reserved for the node-wide series", i, NodeTarget)
		}
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.Resolver == (targets.Resolver{}) {
		cfg.Resolver = targets.Default()
	}
	proc, err := procfs.NewFS(orDefault(cfg.Resolver.Proc, "/proc"))
	if err != nil {
		return nil, fmt.Errorf("runqueue: %w", err)
	}
	p := &Probe{logger: logger, cfg: cfg, proc: proc, found: make([]bool, len(cfg.Targets)), done: make(chan struct{})}
	if err := p.load(); err != nil {
		p.detach()
		p.bpfErr = err
		logger.Warn("BPF run-queue programs unavailable; falling back to schedstat totals (no histograms)", "err", err)
	} else {
		p.bpf = true
	}
	if err := p.refresh(); err != nil {
		logger.Warn("resolve targets", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.refreshLoop(ctx)
	logger.Info("started", "bpf", p.bpf, "targets", len(cfg.Targets))
	return p, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (p *Probe) load() error {
	spec, err := loadRunqueue()
	if err != nil {
		return fmt.Errorf("load spec: %w", err)
	}
	var (
		haveCgroup, haveTgid bool
	)
	for _, t := range p.cfg.Targets {
		haveCgroup = haveCgroup || t.Cgroup != "" || t.SystemdUnit != ""
		haveTgid = haveTgid || t.Process != ""
	}
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

// Close stops the refresh goroutine and detaches the programs.
func (p *Probe) Close() error {
	p.closeMu.Do(func() {
		if p.cancel != nil {
			p.cancel()
			<-p.done
		}
		p.detach()
	})
	return nil
}

// refreshLoop resolves targets again every Refresh until ctx ends (Close).
func (p *Probe) refreshLoop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.refresh(); err != nil {
				p.logger.Warn("resolve targets", "err", err)
			}
		}
	}
}

// refresh resolves the targets and brings the kernel's lookup maps in line.
// On error the last good resolution stays in force.
func (p *Probe) refresh() error {
	if len(p.cfg.Targets) == 0 {
		return nil
	}
	set, err := p.cfg.Resolver.Resolve(p.cfg.Targets)
	if err != nil {
		return err
	}
	if p.bpf {
		if err := syncMap(p.objs.RunqCgroupTargets, set.Cgroups); err != nil {
			return fmt.Errorf("update cgroup targets: %w", err)
		}
		tg := make(map[uint32]uint32, len(set.Tgids))
		for k, v := range set.Tgids {
			tg[k] = v
		}
		if err := syncMap(p.objs.RunqTgidTargets, tg); err != nil {
			return fmt.Errorf("update process targets: %w", err)
		}
	}
	p.mu.Lock()
	p.found, p.set = set.Found, set
	p.mu.Unlock()
	return nil
}

// syncMap makes a kernel hash map hold exactly want.
func syncMap[K comparable](m *ebpf.Map, want map[K]uint32) error {
	var (
		k     K
		v     uint32
		stale []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if w, ok := want[k]; !ok || w != v {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	var errs []error
	for k, v := range want {
		if err := m.Put(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
	var perCPU []runqueueRunqHist
	if err := p.objs.RunqueueDelaySeconds.Lookup(uint32(0), &perCPU); err != nil {
		return nil, fmt.Errorf("runqueue: read node histogram: %w", err)
	}
	d.Node = sumHist(perCPU)
	p.mu.Lock()
	found := append([]bool(nil), p.found...)
	p.mu.Unlock()
	for i, t := range p.cfg.Targets {
		if !found[i] {
			continue // exited or not started: no series
		}
		if err := p.objs.RunqueueTargetDelaySeconds.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("runqueue: read target %q: %w", t.Name, err)
		}
		d.Targets[t.Name] = sumHist(perCPU)
	}
	return d, nil
}

func sumHist(perCPU []runqueueRunqHist) histogram.Hist {
	var h histogram.Hist
	for _, c := range perCPU {
		for i := range h.Counts {
			h.Counts[i] += c.Counts[i]
		}
		h.SumNs += c.SumNs
	}
	return h
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
