package blockio

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/outlier"
)

// Config says how the probe sizes its maps and how finely it exports.
type Config struct {
	// BucketsPerOctave is the exported histogram resolution: 1, 2 or 4
	// buckets per power of two. The kernel always keeps 4.
	BucketsPerOctave int
	// MaxDevices is the number of device slots; 0 sizes it from the machine.
	MaxDevices int
	// MaxRequests is the number of requests remembered between issue and
	// completion; 0 sizes it from the machine.
	MaxRequests int

	// Outliers receives every request whose service time is at least
	// OutlierService or whose queue time is at least OutlierQueue, with
	// its context. nil turns the outlier path off: the kernel then
	// compares against a threshold no request reaches, and no reader runs.
	Outliers flight.Sink
	// OutlierService and OutlierQueue are the thresholds; 0 means
	// DefaultOutlierService and DefaultOutlierQueue.
	OutlierService time.Duration
	OutlierQueue   time.Duration
	// OutlierRate is how many outliers per second each CPU lets through
	// (0: outlier.DefaultRate), OutlierBurst how many at once (0: the
	// rate); the kernel counts the rest in OutlierDrops.
	OutlierRate  int
	OutlierBurst int
}

// Default outlier thresholds, those of the goals' slow_drive and
// disk_overload rules (actuator/goals/default.yaml): a request slower than
// the p99 a healthy disk keeps.
const (
	DefaultOutlierService = 50 * time.Millisecond
	DefaultOutlierQueue   = 100 * time.Millisecond
)

// Mode says which kernel hooks the probe runs on.
type Mode string

const (
	// ModeBTF uses tp_btf programs (Linux 5.5+) with direct, BTF-checked loads.
	ModeBTF Mode = "tp_btf"
	// ModeRawTP uses raw_tp programs with CO-RE probe reads (Linux 4.17+);
	// queue time then excludes waits for a driver tag.
	ModeRawTP Mode = "raw_tp"
)

// Probe measures block I/O. Create it with New; Close it when done.
type Probe struct {
	logger     *slog.Logger
	cfg        Config
	mode       Mode
	tagWaits   bool // bio submission -> request wait is measured
	names      *devNamer
	outliers   *outlier.Reader // nil: no sink
	devices    *ebpf.Map
	requests   *ebpf.Map
	drops      *ebpf.Map
	tagwaitMap *ebpf.Map
	outlierRB  *ebpf.Map // block_outliers
	outlierDr  *ebpf.Map // outlier_drops
	outlierBk  *ebpf.Map // outlier_buckets
	programs   map[string]*ebpf.Program
	links      []link.Link
	closeOnce  sync.Once
}

// Objects loaded in every mode.
type coreObjects struct {
	Devices  *ebpf.Map `ebpf:"block_devices"`
	Requests *ebpf.Map `ebpf:"block_requests"`
	Drops    *ebpf.Map `ebpf:"block_drops"`
	TagWaits *ebpf.Map `ebpf:"block_tagwaits"`
	Outliers *ebpf.Map `ebpf:"block_outliers"`
	OutDrops *ebpf.Map `ebpf:"outlier_drops"`
	Buckets  *ebpf.Map `ebpf:"outlier_buckets"`
}

type btfObjects struct {
	coreObjects
	Issue    *ebpf.Program `ebpf:"nrv_rq_issue"`
	Complete *ebpf.Program `ebpf:"nrv_rq_complete"`
	Requeue  *ebpf.Program `ebpf:"nrv_rq_requeue"`
}

type tagWaitObjects struct {
	BioQueue *ebpf.Program `ebpf:"nrv_bio_queue"`
	Split    *ebpf.Program `ebpf:"nrv_bio_split"`
	GetRq    *ebpf.Program `ebpf:"nrv_getrq"`
}

type rawObjects struct {
	coreObjects
	Issue    *ebpf.Program `ebpf:"nrv_rq_issue_r"`
	Complete *ebpf.Program `ebpf:"nrv_rq_complete_r"`
	Requeue  *ebpf.Program `ebpf:"nrv_rq_requeue_r"`
}

type rawQueueArgObjects struct {
	coreObjects
	Issue    *ebpf.Program `ebpf:"nrv_rq_issue_q"`
	Complete *ebpf.Program `ebpf:"nrv_rq_complete_r"`
	Requeue  *ebpf.Program `ebpf:"nrv_rq_requeue_q"`
}

// New loads and attaches the block I/O programs: tp_btf where the kernel has
// it, raw_tp otherwise. Waits for a driver tag are measured where task storage
// is available too; without it the probe still runs and logs what it lacks.
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	if cfg.BucketsPerOctave == 0 {
		cfg.BucketsPerOctave = 2
	}
	if !histogram.ValidPerOctave(cfg.BucketsPerOctave) {
		return nil, fmt.Errorf("blockio: buckets per octave must be 1, 2 or 4, got %d", cfg.BucketsPerOctave)
	}
	if cfg.MaxDevices < 0 || cfg.MaxRequests < 0 {
		return nil, fmt.Errorf("blockio: max devices (%d) and max requests (%d) must not be negative", cfg.MaxDevices, cfg.MaxRequests)
	}
	if cfg.MaxDevices == 0 {
		cfg.MaxDevices = machineDeviceSlots("/sys")
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = machineRequestSlots("/sys")
	}

	spec, err := loadBlockio()
	if err != nil {
		return nil, fmt.Errorf("blockio: load spec: %w", err)
	}
	if err := checkLayout(spec); err != nil {
		return nil, err
	}
	spec.Maps["block_devices"].MaxEntries = uint32(cfg.MaxDevices)
	spec.Maps["block_requests"].MaxEntries = uint32(cfg.MaxRequests)
	if cfg.OutlierService == 0 {
		cfg.OutlierService = DefaultOutlierService
	}
	if cfg.OutlierQueue == 0 {
		cfg.OutlierQueue = DefaultOutlierQueue
	}
	if err := outlier.Configure(spec, "block_outliers", cfg.Outliers != nil,
		outlier.Limit{Rate: cfg.OutlierRate, Burst: cfg.OutlierBurst},
		outlier.Threshold{Var: "outlier_service_ns", D: cfg.OutlierService},
		outlier.Threshold{Var: "outlier_queue_ns", D: cfg.OutlierQueue}); err != nil {
		return nil, fmt.Errorf("blockio: %w", err)
	}

	p := &Probe{logger: logger, cfg: cfg, names: newDevNamer("/sys"), programs: map[string]*ebpf.Program{}}
	if err := p.loadAndAttach(spec); err != nil {
		p.Close()
		return nil, err
	}
	if cfg.Outliers != nil {
		if err := p.startOutliers(); err != nil {
			p.Close()
			return nil, fmt.Errorf("blockio: %w", err)
		}
	}
	logger.Info("attach mode", "mode", p.mode, "tag_waits", p.tagWaits,
		"device_slots", cfg.MaxDevices, "request_slots", cfg.MaxRequests, "outliers", cfg.Outliers != nil)
	return p, nil
}

// tryBTF is false only in the tests of the raw_tp fallback, which this
// kernel would otherwise never take.
var tryBTF = true

func (p *Probe) loadAndAttach(spec *ebpf.CollectionSpec) error {
	btfErr := errors.New("tp_btf not tried")
	if tryBTF {
		if btfErr = p.loadBTF(spec); btfErr == nil {
			return nil
		}
		p.detach()
	}
	p.logger.Warn("tp_btf unavailable, falling back to raw_tp", "err", btfErr)
	if err := p.loadRaw(spec); err != nil {
		return fmt.Errorf("blockio: tp_btf: %v; raw_tp: %w", btfErr, err)
	}
	return nil
}

func (p *Probe) loadBTF(spec *ebpf.CollectionSpec) error {
	var objs btfObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return fmt.Errorf("load tp_btf programs: %w", err)
	}
	p.keep(objs.coreObjects)
	for name, prog := range map[string]*ebpf.Program{"nrv_rq_issue": objs.Issue, "nrv_rq_complete": objs.Complete, "nrv_rq_requeue": objs.Requeue} {
		p.programs[name] = prog
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", name, err)
		}
		p.links = append(p.links, l)
	}
	p.mode = ModeBTF

	// Tag waits are a bonus: without task storage the probe still works.
	var tw tagWaitObjects
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"block_devices": objs.Devices, "block_drops": objs.Drops, "block_tagwaits": objs.TagWaits,
	}}
	if err := spec.LoadAndAssign(&tw, opts); err != nil {
		p.logger.Warn("queue time will exclude waits for a driver tag", "err", err)
		return nil
	}
	var links []link.Link
	for name, prog := range map[string]*ebpf.Program{"nrv_bio_queue": tw.BioQueue, "nrv_bio_split": tw.Split, "nrv_getrq": tw.GetRq} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			tw.BioQueue.Close()
			tw.Split.Close()
			tw.GetRq.Close()
			p.logger.Warn("queue time will exclude waits for a driver tag", "err", fmt.Errorf("attach %s: %w", name, err))
			return nil
		}
		links = append(links, l)
	}
	p.links = append(p.links, links...)
	p.programs["nrv_bio_queue"], p.programs["nrv_bio_split"], p.programs["nrv_getrq"] = tw.BioQueue, tw.Split, tw.GetRq
	p.tagWaits = true
	return nil
}

func (p *Probe) loadRaw(spec *ebpf.CollectionSpec) error {
	// Before Linux 5.11 block_rq_issue and block_rq_requeue also passed the queue.
	queueArg, err := tracepointTakesQueue("block_rq_issue")
	if err != nil {
		p.logger.Warn("cannot read the block_rq_issue prototype, assuming the current one", "err", err)
	}
	var issue, complete, requeue *ebpf.Program
	if queueArg {
		var objs rawQueueArgObjects
		if err := spec.LoadAndAssign(&objs, nil); err != nil {
			return fmt.Errorf("load raw_tp programs: %w", err)
		}
		p.keep(objs.coreObjects)
		issue, complete, requeue = objs.Issue, objs.Complete, objs.Requeue
	} else {
		var objs rawObjects
		if err := spec.LoadAndAssign(&objs, nil); err != nil {
			return fmt.Errorf("load raw_tp programs: %w", err)
		}
		p.keep(objs.coreObjects)
		issue, complete, requeue = objs.Issue, objs.Complete, objs.Requeue
	}
	for _, a := range []struct {
		tp   string
		prog *ebpf.Program
	}{{"block_rq_issue", issue}, {"block_rq_complete", complete}, {"block_rq_requeue", requeue}} {
		p.programs["raw_"+a.tp] = a.prog
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.tp, Program: a.prog})
		if err != nil {
			return fmt.Errorf("attach raw_tp %s: %w", a.tp, err)
		}
		p.links = append(p.links, l)
	}
	p.mode = ModeRawTP
	return nil
}

func (p *Probe) keep(c coreObjects) {
	p.devices, p.requests, p.drops, p.tagwaitMap = c.Devices, c.Requests, c.Drops, c.TagWaits
	p.outlierRB, p.outlierDr, p.outlierBk = c.Outliers, c.OutDrops, c.Buckets
}

// detach closes links, programs and maps after a failed attempt.
func (p *Probe) detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	for _, prog := range p.programs {
		prog.Close()
	}
	p.programs = map[string]*ebpf.Program{}
	for _, m := range []*ebpf.Map{p.devices, p.requests, p.drops, p.tagwaitMap, p.outlierRB, p.outlierDr, p.outlierBk} {
		if m != nil {
			m.Close()
		}
	}
	p.devices, p.requests, p.drops, p.tagwaitMap = nil, nil, nil, nil
	p.outlierRB, p.outlierDr, p.outlierBk = nil, nil, nil
}

// Close stops the outlier reader (outliers not yet read are dropped),
// detaches the programs and frees the maps. It is safe to call twice.
func (p *Probe) Close() error {
	p.closeOnce.Do(func() {
		p.outliers.Close()
		p.detach()
	})
	return nil
}

// Mode says which hooks the probe runs on.
func (p *Probe) Mode() Mode { return p.mode }

// TagWaits says whether queue time includes waits for a driver tag.
func (p *Probe) TagWaits() bool { return p.tagWaits }

// Programs returns the loaded programs by name, for per-program statistics.
func (p *Probe) Programs() map[string]*ebpf.Program {
	out := make(map[string]*ebpf.Program, len(p.programs))
	for k, v := range p.programs {
		out[k] = v
	}
	return out
}

// checkLayout makes sure the Go mirror of the kernel structs matches the
// object we are about to load, so a stale generated file fails loudly here
// rather than misreading counts.
func checkLayout(spec *ebpf.CollectionSpec) error {
	m := spec.Maps["block_devices"]
	if m == nil {
		return errors.New("blockio: object has no block_devices map")
	}
	if got, want := m.ValueSize, uint32(deviceStatsSize); got != want {
		return fmt.Errorf("blockio: block_devices value is %d bytes, Go expects %d: regenerate with make generate", got, want)
	}
	var d blockioBlockDeviceStats
	if len(d.Queue[0]) != histogram.Buckets {
		return fmt.Errorf("blockio: kernel histogram has %d buckets, Go expects %d", len(d.Queue[0]), histogram.Buckets)
	}
	return nil
}

// tracepointTakesQueue reads the tracepoint's prototype from kernel BTF:
// (void *, struct request_queue *, struct request *) before Linux 5.11.
func tracepointTakesQueue(tp string) (bool, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false, err
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+tp, &td); err != nil {
		return false, err
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false, fmt.Errorf("btf_trace_%s is not a pointer", tp)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return false, fmt.Errorf("btf_trace_%s is not a function pointer", tp)
	}
	return len(proto.Params) == 3, nil
}

// machineDeviceSlots sizes the device map: request_queue ids are small and
// reused, so four times today's disks (and at least 64) leaves room for
// hot-plugged and loop devices.
func machineDeviceSlots(sysfs string) int {
	entries, _ := os.ReadDir(filepath.Join(sysfs, "block"))
	return clamp(4*len(entries), 64, 4096)
}

// machineRequestSlots sizes the request map from the requests the disks can
// have at once: each hardware queue's depth plus the scheduler's requests.
func machineRequestSlots(sysfs string) int {
	disks, _ := os.ReadDir(filepath.Join(sysfs, "block"))
	total := 0
	for _, d := range disks {
		q := filepath.Join(sysfs, "block", d.Name())
		nr := readInt(filepath.Join(q, "queue", "nr_requests"), 128)
		hctx, _ := os.ReadDir(filepath.Join(q, "mq"))
		total += nr * max(1, len(hctx))
	}
	return clamp(2*total, 4096, 1<<18)
}

func readInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return def
	}
	return n
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }
