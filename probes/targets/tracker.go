package targets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// Tracker keeps a probe's view of its targets current: it resolves them
// again every refresh period and brings the kernel's lookup maps (cgroup id
// -> index, tgid -> index; see bpf/include/nerve_targets.h) in line. On a
// failed refresh the last good resolution stays in force.
type Tracker struct {
	logger   *slog.Logger
	resolver Resolver
	targets  []Target
	cgroups  *ebpf.Map // may be nil (no BPF)
	tgids    *ebpf.Map // may be nil (no BPF)
	cancel   context.CancelFunc
	done     chan struct{}

	mu  sync.Mutex // guards set
	set *Set
}

// NewTracker resolves once, then every period until Close. The maps may be
// nil when the probe runs without BPF.
func NewTracker(logger *slog.Logger, r Resolver, ts []Target, period time.Duration, cgroups, tgids *ebpf.Map) *Tracker {
	t := &Tracker{logger: logger, resolver: r, targets: ts, cgroups: cgroups, tgids: tgids, done: make(chan struct{})}
	if err := t.Refresh(); err != nil {
		logger.Warn("resolve targets", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go t.loop(ctx, period)
	return t
}

// loop refreshes until ctx ends (Close).
func (t *Tracker) loop(ctx context.Context, period time.Duration) {
	defer close(t.done)
	if len(t.targets) == 0 {
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.Refresh(); err != nil {
				t.logger.Warn("resolve targets", "err", err)
			}
		}
	}
}

// Close stops the refresh goroutine and waits for it.
func (t *Tracker) Close() {
	t.cancel()
	<-t.done
}

// Refresh resolves the targets now.
func (t *Tracker) Refresh() error {
	if len(t.targets) == 0 {
		return nil
	}
	set, err := t.resolver.Resolve(t.targets)
	if err != nil {
		return err
	}
	if t.cgroups != nil {
		if err := syncMap(t.cgroups, set.Cgroups); err != nil {
			return fmt.Errorf("update cgroup targets: %w", err)
		}
	}
	if t.tgids != nil {
		if err := syncMap(t.tgids, set.Tgids); err != nil {
			return fmt.Errorf("update process targets: %w", err)
		}
	}
	t.mu.Lock()
	t.set = set
	t.mu.Unlock()
	return nil
}

// Current returns the last good resolution, or an empty one.
func (t *Tracker) Current() *Set {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil {
		return &Set{Cgroups: map[uint64]uint32{}, Tgids: map[uint32]uint32{}, Found: make([]bool, len(t.targets))}
	}
	return t.set
}

// Kinds says which kinds of target are configured, for the BPF programs'
// have_cgroup_targets and have_tgid_targets switches.
func Kinds(ts []Target) (cgroups, tgids bool) {
	for _, t := range ts {
		cgroups = cgroups || t.Cgroup != "" || t.SystemdUnit != ""
		tgids = tgids || t.Process != ""
	}
	return cgroups, tgids
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
