//go:build 386 || amd64

package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/nervehq/nerve/jvm/thrash"
	"github.com/nervehq/nerve/jvm/usdt"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
	"github.com/nervehq/nerve/probes/targets"
)

// Config says which JVMs to watch.
type Config struct {
	// Targets limit the JVMs watched to those matching a target, labelled
	// with its name. Empty: every JVM, labelled with its command name.
	Targets []targets.Target
	// Scan is how often /proc is scanned for new and exited JVMs; 0 = 2 s.
	Scan time.Duration
	// Proc is the procfs root; "" = /proc.
	Proc string
	// Resolver resolves targets; zero = the host's.
	Resolver targets.Resolver
	// OnPause, if set, is called for every pause in event order (from the
	// reader goroutine; it must not block).
	OnPause func(Pause)
	// Thrash configures each JVM's thrash detector; zero means jvmquake's
	// defaults (30 s, weight 5).
	Thrash thrash.Config
	// Outliers receives every safepoint whose pause is at least
	// OutlierPause, with its JVM, VM operation and time to safepoint, from
	// the reader goroutine. nil: none. Safepoints come to user space
	// anyway, so the kernel side is the same either way.
	Outliers flight.Sink
	// OutlierPause is the threshold; 0 means DefaultOutlierPause.
	OutlierPause time.Duration
	// Attach is how the programs attach; "" means AttachAuto.
	Attach AttachMode
}

// DefaultOutlierPause is the outlier threshold when the config leaves it 0:
// a pause no request to a healthy database should see.
const DefaultOutlierPause = 100 * time.Millisecond

// Kind is a kind of stop.
type Kind int

// Kinds, in the BPF program's order.
const (
	Safepoint Kind = iota
	GC
	VMOperation
)

func (k Kind) String() string {
	switch k {
	case Safepoint:
		return "safepoint"
	case GC:
		return "gc"
	case VMOperation:
		return "vm_operation"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Pause is one stop seen in a JVM.
type Pause struct {
	PID        int
	Label      string // target name, or the JVM's command name
	Kind       Kind
	Start, End time.Duration // CLOCK_MONOTONIC
	Operation  string        // VM operation name, for VMOperation
}

// Duration of the pause.
func (p Pause) Duration() time.Duration { return p.End - p.Start }

// JVM is one watched JVM.
type JVM struct {
	PID    int
	Label  string
	Lib    string // libjvm.so as the host sees it
	Start  uint64 // process start time in ticks, to tell a restarted pid apart
	Probes bool   // its libjvm.so has the USDT probes and they are attached

	comm     string // for outliers, read when it was found
	cgroupID uint64
}

// lib is one distinct libjvm.so file with its attached uprobes.
type lib struct {
	path   string
	links  []link.Link
	attach AttachMode // how links are attached
	users  int
	err    error // why it has no probes
}

// programs are the six programs of one attach mode (bpf/jvm.bpf.c), in
// the order of usdtProbes.
type programs struct {
	SpBegin, SpEnd, GcBegin, GcEnd, VmopBegin, VmopEnd *ebpf.Program
}

// uprobePrograms loads the classic uprobe variants. Its fields are those
// of programs, which it converts to.
type uprobePrograms struct {
	SpBegin   *ebpf.Program `ebpf:"nrv_jvm_sp_begin"`
	SpEnd     *ebpf.Program `ebpf:"nrv_jvm_sp_end"`
	GcBegin   *ebpf.Program `ebpf:"nrv_jvm_gc_begin"`
	GcEnd     *ebpf.Program `ebpf:"nrv_jvm_gc_end"`
	VmopBegin *ebpf.Program `ebpf:"nrv_jvm_vmop_begin"`
	VmopEnd   *ebpf.Program `ebpf:"nrv_jvm_vmop_end"`
}

// uprobeMultiPrograms loads the uprobe_multi variants.
type uprobeMultiPrograms struct {
	SpBegin   *ebpf.Program `ebpf:"nrv_jvm_sp_begin_m"`
	SpEnd     *ebpf.Program `ebpf:"nrv_jvm_sp_end_m"`
	GcBegin   *ebpf.Program `ebpf:"nrv_jvm_gc_begin_m"`
	GcEnd     *ebpf.Program `ebpf:"nrv_jvm_gc_end_m"`
	VmopBegin *ebpf.Program `ebpf:"nrv_jvm_vmop_begin_m"`
	VmopEnd   *ebpf.Program `ebpf:"nrv_jvm_vmop_end_m"`
}

func (ps programs) list() []*ebpf.Program {
	return []*ebpf.Program{ps.SpBegin, ps.SpEnd, ps.GcBegin, ps.GcEnd, ps.VmopBegin, ps.VmopEnd}
}

// usdtProbes are the USDT probes the programs attach to, in their order,
// with the programs' names in bpf/jvm.bpf.c (the uprobe_multi variants add
// "_m").
var usdtProbes = [...]struct{ provider, name, prog string }{
	{"hs_private", "safepoint__begin", "nrv_jvm_sp_begin"}, {"hs_private", "safepoint__end", "nrv_jvm_sp_end"},
	{"hotspot", "gc__begin", "nrv_jvm_gc_begin"}, {"hotspot", "gc__end", "nrv_jvm_gc_end"},
	{"hotspot", "vmops__begin", "nrv_jvm_vmop_begin"}, {"hotspot", "vmops__end", "nrv_jvm_vmop_end"},
}

// Probe is the running JVM watcher. Close it when done.
type Probe struct {
	logger *slog.Logger
	cfg    Config
	spec   *ebpf.CollectionSpec
	maps   jvmMaps
	mode   AttachMode // uprobe_multi or uprobe: how each libjvm.so is attached first
	rd     *ringbuf.Reader
	agg    *aggregator
	clock  outlier.Clock // CLOCK_MONOTONIC to wall clock, for outliers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex              // guards jvms, gone, libs and progs
	jvms  map[int]*JVM            // by pid
	gone  map[int]goneJVM         // exited JVMs whose last events may still be in the ring buffer
	libs  map[[2]uint64]*lib      // by (dev, inode)
	progs map[AttachMode]programs // loaded on first use: the mode's, and uprobe's for a fallback
}

// goneJVM keeps an exited JVM's label until its last events are read.
type goneJVM struct {
	label    string
	comm     string
	cgroupID uint64
	at       time.Time
}

// goneGrace is how long an exited JVM's events are still accepted: a few
// reader polls.
const goneGrace = time.Second

// New loads the programs and starts watching. It fails only when the BPF
// side cannot load at all; JVMs without probes are reported per JVM.
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	if err := targets.ValidateAll(cfg.Targets, 64); err != nil {
		return nil, fmt.Errorf("jvm: %w", err)
	}
	if cfg.Scan <= 0 {
		cfg.Scan = 2 * time.Second
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	if cfg.Resolver == (targets.Resolver{}) {
		cfg.Resolver = targets.Default()
	}
	if cfg.OutlierPause < 0 {
		return nil, fmt.Errorf("jvm: outlier pause must not be negative, got %v", cfg.OutlierPause)
	}
	if cfg.OutlierPause == 0 {
		cfg.OutlierPause = DefaultOutlierPause
	}
	if cfg.Thrash == (thrash.Config{}) {
		cfg.Thrash = thrash.DefaultConfig()
	}
	if err := cfg.Thrash.Validate(); err != nil {
		return nil, fmt.Errorf("jvm: %w", err)
	}
	if err := cfg.Attach.check(); err != nil {
		return nil, fmt.Errorf("jvm: %w", err)
	}
	if cfg.Attach == "" {
		cfg.Attach = AttachAuto
	}
	mode, why := chooseMode(cfg.Attach)
	if mode == "" {
		return nil, fmt.Errorf("jvm: %s configured: %w", cfg.Attach, why)
	}
	if why != nil {
		logger.Info("uprobe_multi unavailable; attaching classic uprobes, which need CAP_SYS_ADMIN", "why", why)
	}
	p := &Probe{logger: logger, cfg: cfg, mode: mode, jvms: map[int]*JVM{}, gone: map[int]goneJVM{}, libs: map[[2]uint64]*lib{},
		progs: map[AttachMode]programs{}, agg: newAggregator(cfg.Thrash), clock: outlier.NewClock()}
	spec, err := loadJvm()
	if err != nil {
		return nil, fmt.Errorf("jvm: %w", err)
	}
	p.spec = spec
	if err := spec.LoadAndAssign(&p.maps, nil); err != nil {
		return nil, fmt.Errorf("jvm: load maps: %w", err)
	}
	if _, err := p.loadPrograms(mode); err != nil {
		p.closeObjects()
		return nil, fmt.Errorf("jvm: load %s programs: %w", mode, err)
	}
	rd, err := ringbuf.NewReader(p.maps.JvmEvents)
	if err != nil {
		p.closeObjects()
		return nil, fmt.Errorf("jvm: ring buffer: %w", err)
	}
	p.rd = rd
	logger.Info("attach mode", "attach", mode, "configured", cfg.Attach)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.scan()
	// The reader ends when Close closes the ring buffer; the scanner when
	// ctx is cancelled.
	p.wg.Add(2)
	go p.read(ctx)
	go p.scanLoop(ctx)
	return p, nil
}

// haveUprobeMulti tests the kernel once (cilium/ebpf caches the answer).
var haveUprobeMulti = features.HaveBPFLinkUprobeMulti

// chooseMode turns the configured mode into the one the probe attaches
// with. For auto, why says why that is not uprobe_multi; for uprobe_multi
// the kernel cannot do, the mode is "" and why says why.
func chooseMode(want AttachMode) (mode AttachMode, why error) {
	if want == AttachUprobe {
		return AttachUprobe, nil
	}
	if err := haveUprobeMulti(); err != nil {
		if want == AttachUprobeMulti {
			return "", err
		}
		return AttachUprobe, err
	}
	return AttachUprobeMulti, nil
}

// AttachMode says how the probe attaches to each libjvm.so: AttachUprobeMulti
// or AttachUprobe, never AttachAuto. In auto mode a library that
// uprobe_multi cannot attach to gets classic uprobes (logged); the mode
// stays what new libraries get first.
func (p *Probe) AttachMode() AttachMode { return p.mode }

// loadPrograms returns the mode's programs, loading them on first use: those
// of the probe's mode at start, the classic ones on a library's fallback.
// Only the scanner (and New before it) calls it.
func (p *Probe) loadPrograms(mode AttachMode) (programs, error) {
	p.mu.Lock()
	ps, ok := p.progs[mode]
	p.mu.Unlock()
	if ok {
		return ps, nil
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"jvm_watched": p.maps.JvmWatched, "jvm_starts": p.maps.JvmStarts,
		"jvm_events": p.maps.JvmEvents, "jvm_drops": p.maps.JvmDrops,
	}}
	if mode == AttachUprobeMulti {
		var m uprobeMultiPrograms
		if err := p.spec.LoadAndAssign(&m, opts); err != nil {
			return programs{}, err
		}
		ps = programs(m)
	} else {
		var u uprobePrograms
		if err := p.spec.LoadAndAssign(&u, opts); err != nil {
			return programs{}, err
		}
		ps = programs(u)
	}
	p.mu.Lock()
	p.progs[mode] = ps
	p.mu.Unlock()
	return ps, nil
}

// Programs returns the loaded programs by name.
func (p *Probe) Programs() map[string]*ebpf.Program {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]*ebpf.Program{}
	for mode, ps := range p.progs {
		suffix := ""
		if mode == AttachUprobeMulti {
			suffix = "_m"
		}
		for i, prog := range ps.list() {
			out[usdtProbes[i].prog+suffix] = prog
		}
	}
	return out
}

// Close detaches everything and waits for the goroutines.
func (p *Probe) Close() error {
	p.cancel()
	p.rd.Close()
	p.wg.Wait()
	p.mu.Lock()
	for _, l := range p.libs {
		for _, k := range l.links {
			k.Close()
		}
	}
	p.libs = map[[2]uint64]*lib{}
	p.mu.Unlock()
	return p.closeObjects()
}

// closeObjects closes the programs and maps.
func (p *Probe) closeObjects() error {
	var errs []error
	p.mu.Lock()
	for _, ps := range p.progs {
		for _, prog := range ps.list() {
			errs = append(errs, prog.Close())
		}
	}
	p.progs = map[AttachMode]programs{}
	p.mu.Unlock()
	errs = append(errs, p.maps.Close())
	return errors.Join(errs...)
}

// JVMs lists the JVMs watched now.
func (p *Probe) JVMs() []JVM {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]JVM, 0, len(p.jvms))
	for _, j := range p.jvms {
		out = append(out, *j)
	}
	return out
}

func (p *Probe) scanLoop(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.Scan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.scan()
		}
	}
}

// pollInterval is how often the reader looks at the ring buffer: the BPF
// side does not wake it per event (see bpf/jvm.bpf.c).
const pollInterval = 100 * time.Millisecond

// read turns ring-buffer records into pauses until the reader is closed or
// ctx ends (Close does both).
func (p *Probe) read(ctx context.Context) {
	defer p.wg.Done()
	var rec ringbuf.Record
	for {
		p.rd.SetDeadline(time.Now().Add(pollInterval))
		if err := p.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || ctx.Err() != nil {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			p.logger.Warn("read JVM events", "err", err)
			continue
		}
		var ev jvmJvmEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			p.logger.Warn("decode JVM event", "err", err)
			continue
		}
		p.mu.Lock()
		var who goneJVM
		known := false
		if j := p.jvms[int(ev.Tgid)]; j != nil {
			who, known = goneJVM{label: j.Label, comm: j.comm, cgroupID: j.cgroupID}, true
		} else if g, ok := p.gone[int(ev.Tgid)]; ok {
			who, known = g, true // its last events, read after it exited
		}
		p.mu.Unlock()
		if !known {
			continue
		}
		label := who.label
		pause := Pause{
			PID: int(ev.Tgid), Label: label, Kind: Kind(ev.Kind),
			Start: time.Duration(ev.StartNs), End: time.Duration(ev.EndNs),
		}
		if pause.Kind == VMOperation {
			pause.Operation = cString(ev.Op[:])
		}
		sp := p.agg.add(pause)
		if p.cfg.OnPause != nil {
			p.cfg.OnPause(pause)
		}
		if pause.Kind == Safepoint && p.cfg.Outliers != nil && pause.Duration() >= p.cfg.OutlierPause {
			p.cfg.Outliers.Record(p.outlierEvent(pause, sp, who))
		}
	}
}

func cString(b []int8) string {
	n := 0
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
		n++
	}
	return string(out)
}

// scan finds JVMs, attaches to new libjvm.so files, and forgets exited JVMs.
func (p *Probe) scan() {
	var set *targets.Set
	if len(p.cfg.Targets) > 0 {
		s, err := p.cfg.Resolver.Resolve(p.cfg.Targets)
		if err != nil {
			p.logger.Warn("resolve targets", "err", err)
			return // keep the last good state
		}
		set = s
	}
	entries, err := os.ReadDir(p.cfg.Proc)
	if err != nil {
		p.logger.Warn("scan processes", "err", err)
		return
	}
	seen := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		libPath, ok := mapsLibjvm(filepath.Join(p.cfg.Proc, e.Name(), "maps"))
		if !ok {
			continue
		}
		label, ok := p.labelFor(pid, set)
		if !ok {
			continue
		}
		start := startTime(filepath.Join(p.cfg.Proc, e.Name(), "stat"))
		seen[pid] = true
		p.mu.Lock()
		old := p.jvms[pid]
		p.mu.Unlock()
		if old != nil && old.Start == start {
			continue
		}
		if old != nil { // the pid was reused by a new JVM
			p.forget(pid)
		}
		host := filepath.Join(p.cfg.Proc, e.Name(), "root", libPath)
		p.watch(&JVM{PID: pid, Label: label, Lib: host, Start: start})
	}
	p.mu.Lock()
	var gone, done []int
	for pid := range p.jvms {
		if !seen[pid] {
			gone = append(gone, pid)
		}
	}
	for pid, g := range p.gone {
		if time.Since(g.at) > goneGrace {
			done = append(done, pid)
			delete(p.gone, pid)
		}
	}
	p.mu.Unlock()
	for _, pid := range gone {
		p.forget(pid)
	}
	// Their last events are read by now: drop their series.
	for _, pid := range done {
		p.agg.forget(pid)
	}
}

// labelFor decides whether a JVM is watched and under which label.
func (p *Probe) labelFor(pid int, set *targets.Set) (string, bool) {
	if set == nil {
		comm, err := os.ReadFile(filepath.Join(p.cfg.Proc, strconv.Itoa(pid), "comm"))
		if err != nil {
			return "", false
		}
		return strings.TrimSpace(string(comm)), true
	}
	if idx, ok := set.Tgids[uint32(pid)]; ok {
		return p.cfg.Targets[idx].Name, true
	}
	if id, ok := cgroupID(p.cfg.Proc, p.cfg.Resolver.CgroupRoot, pid); ok {
		if idx, ok := set.Cgroups[id]; ok {
			return p.cfg.Targets[idx].Name, true
		}
	}
	return "", false
}

// cgroupID finds a process's cgroup v2 id from /proc/<pid>/cgroup.
func cgroupID(proc, root string, pid int) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			id, err := targets.CgroupID(filepath.Join(root, rest))
			return id, err == nil
		}
	}
	return 0, false
}

func (p *Probe) watch(j *JVM) {
	var st syscall.Stat_t
	if err := syscall.Stat(j.Lib, &st); err != nil {
		p.logger.Warn("stat libjvm.so", "pid", j.PID, "lib", j.Lib, "err", err)
		return
	}
	key := [2]uint64{uint64(st.Dev), st.Ino}
	p.mu.Lock()
	l := p.libs[key]
	p.mu.Unlock()
	if l == nil {
		l = &lib{path: j.Lib}
		var locations int
		l.links, l.attach, locations, l.err = p.attach(j.Lib)
		if l.err != nil {
			p.logger.Warn("libjvm.so has no usable USDT probes; its JVMs are read from hsperfdata where they publish it", "lib", j.Lib, "err", l.err)
		} else {
			p.logger.Info("attached to libjvm.so", "lib", j.Lib, "attach", l.attach, "locations", locations, "links", len(l.links))
		}
	}
	j.Probes = l.err == nil
	if comm, err := os.ReadFile(filepath.Join(p.cfg.Proc, strconv.Itoa(j.PID), "comm")); err == nil {
		j.comm = strings.TrimSpace(string(comm))
	}
	j.cgroupID, _ = cgroupID(p.cfg.Proc, p.cfg.Resolver.CgroupRoot, j.PID)
	tgid := uint32(j.PID)
	if err := p.maps.JvmWatched.Put(tgid, uint8(1)); err != nil {
		p.logger.Warn("watch JVM", "pid", j.PID, "err", err)
	}
	p.mu.Lock()
	l.users++
	p.libs[key] = l
	p.jvms[j.PID] = j
	p.mu.Unlock()
	p.logger.Info("watching JVM", "pid", j.PID, "label", j.Label, "probes", j.Probes)
	if !j.Probes {
		if _, err := hsperfFor(p.cfg.Proc, j.PID); err != nil {
			p.logger.Warn("JVM has neither USDT probes nor hsperfdata (-XX:+PerfDisableSharedMem?): its pauses cannot be seen", "pid", j.PID, "label", j.Label, "err", err)
		}
	}
}

// forget drops an exited JVM; the last JVM of a libjvm.so detaches it.
func (p *Probe) forget(pid int) {
	p.mu.Lock()
	j := p.jvms[pid]
	delete(p.jvms, pid)
	if j != nil {
		p.gone[pid] = goneJVM{label: j.Label, comm: j.comm, cgroupID: j.cgroupID, at: time.Now()}
	}
	var detach []link.Link
	for key, l := range p.libs {
		if j != nil && l.path == j.Lib {
			l.users--
			if l.users <= 0 {
				detach = l.links
				delete(p.libs, key)
			}
		}
	}
	p.mu.Unlock()
	for _, l := range detach {
		l.Close()
	}
	p.maps.JvmWatched.Delete(uint32(pid))
	for k := 0; k < 3; k++ {
		p.maps.JvmStarts.Delete(jvmJvmKey{Tgid: uint32(pid), Kind: uint32(k)})
	}
	if j != nil {
		p.logger.Info("JVM gone", "pid", pid, "label", j.Label)
	}
}

// attach reads the library's SDT notes and attaches the six programs in
// the probe's mode; in auto mode, a library uprobe_multi fails on gets
// classic uprobes. It returns the links, the mode they are in and the number
// of USDT locations.
func (p *Probe) attach(path string) ([]link.Link, AttachMode, int, error) {
	notes, err := usdt.Read(path)
	if err != nil {
		return nil, "", 0, err
	}
	var sites [len(usdtProbes)][]usdt.Probe
	n := 0
	for i, w := range usdtProbes {
		for _, pr := range notes {
			if pr.Provider == w.provider && pr.Name == w.name {
				sites[i] = append(sites[i], pr)
			}
		}
		if len(sites[i]) == 0 {
			return nil, "", 0, fmt.Errorf("no %s:%s probe in %s (a JVM built without DTrace probes)", w.provider, w.name, path)
		}
		n += len(sites[i])
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, "", 0, err
	}
	if p.mode == AttachUprobeMulti {
		links, err := p.attachWith(AttachUprobeMulti, ex, &sites)
		if err == nil {
			return links, AttachUprobeMulti, n, nil
		}
		if p.cfg.Attach == AttachUprobeMulti {
			return nil, "", 0, err
		}
		p.logger.Warn("uprobe_multi cannot attach to this libjvm.so; attaching classic uprobes, which need CAP_SYS_ADMIN", "lib", path, "err", err)
	}
	links, err := p.attachWith(AttachUprobe, ex, &sites)
	return links, AttachUprobe, n, err
}

// uprobeMulti attaches one uprobe_multi link; tests replace it to fail.
var uprobeMulti = (*link.Executable).UprobeMulti

// attachWith attaches the mode's programs to the sites of their USDT probes:
// one uprobe_multi link per program, or one uprobe per site. Each site's
// cookie and semaphore go with it.
func (p *Probe) attachWith(mode AttachMode, ex *link.Executable, sites *[len(usdtProbes)][]usdt.Probe) ([]link.Link, error) {
	ps, err := p.loadPrograms(mode)
	if err != nil {
		return nil, fmt.Errorf("load %s programs: %w", mode, err)
	}
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			l.Close()
		}
		return nil, err
	}
	for i, prog := range ps.list() {
		w := usdtProbes[i]
		if mode == AttachUprobeMulti {
			opts := &link.UprobeMultiOptions{}
			semaphores := false
			for _, pr := range sites[i] {
				opts.Addresses = append(opts.Addresses, pr.Offset)
				opts.RefCtrOffsets = append(opts.RefCtrOffsets, pr.Semaphore)
				opts.Cookies = append(opts.Cookies, siteCookie(w.name, pr))
				semaphores = semaphores || pr.Semaphore != 0
			}
			if !semaphores {
				opts.RefCtrOffsets = nil
			}
			l, err := uprobeMulti(ex, nil, prog, opts)
			if err != nil {
				return fail(fmt.Errorf("attach %s:%s at %d locations (uprobe_multi): %w", w.provider, w.name, len(sites[i]), err))
			}
			links = append(links, l)
			continue
		}
		for _, pr := range sites[i] {
			opts := &link.UprobeOptions{Address: pr.Offset, RefCtrOffset: pr.Semaphore, Cookie: siteCookie(w.name, pr)}
			l, err := ex.Uprobe("", prog, opts)
			if err != nil {
				return fail(fmt.Errorf("attach %s:%s at %#x: %w", w.provider, w.name, pr.Offset, err))
			}
			links = append(links, l)
		}
	}
	return links, nil
}

// siteCookie is a site's attach cookie: where vmops__end's arguments are
// (argCookie); 0 for the other probes, whose programs read none.
func siteCookie(name string, pr usdt.Probe) uint64 {
	if name == "vmops__end" {
		return argCookie(pr.Args)
	}
	return 0
}

// argCookie tells the BPF program where vmops__end's name pointer (arg 0) and
// length (arg 1) are: register ids in bits 0-7 and 8-15; 0 when not in a
// register (the name is then left out).
func argCookie(args []usdt.Arg) uint64 {
	if len(args) < 2 || args[0].Kind != usdt.ArgRegister || args[1].Kind != usdt.ArgRegister {
		return 0
	}
	return uint64(regID(args[0].Register)) | uint64(regID(args[1].Register))<<8
}

func regID(r string) jvmJvmReg {
	switch r {
	case "ax":
		return jvmJvmRegREG_AX
	case "bx":
		return jvmJvmRegREG_BX
	case "cx":
		return jvmJvmRegREG_CX
	case "dx":
		return jvmJvmRegREG_DX
	case "si":
		return jvmJvmRegREG_SI
	case "di":
		return jvmJvmRegREG_DI
	case "bp":
		return jvmJvmRegREG_BP
	case "r8":
		return jvmJvmRegREG_R8
	case "r9":
		return jvmJvmRegREG_R9
	case "r10":
		return jvmJvmRegREG_R10
	case "r11":
		return jvmJvmRegREG_R11
	case "r12":
		return jvmJvmRegREG_R12
	case "r13":
		return jvmJvmRegREG_R13
	case "r14":
		return jvmJvmRegREG_R14
	case "r15":
		return jvmJvmRegREG_R15
	}
	return jvmJvmRegREG_NONE
}

// mapsLibjvm finds libjvm.so among a process's mappings; the path is as the
// process sees it (inside its mount namespace).
func mapsLibjvm(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, "/libjvm.so") {
			continue
		}
		if i := strings.IndexByte(line, '/'); i >= 0 {
			return line[i:], true
		}
	}
	return "", false
}

// startTime reads field 22 of /proc/<pid>/stat (start time in ticks).
func startTime(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}
