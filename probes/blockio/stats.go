package blockio

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/nervehq/nerve/probes/histogram"
)

// Op is a block operation as the probe counts it.
type Op int

// Operations, in the order the BPF program indexes them.
const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpDiscard
	OpOther
	numOps
)

var opNames = [numOps]string{"read", "write", "flush", "discard", "other"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("op(%d)", int(o))
	}
	return opNames[o]
}

// InflightClass groups the number of requests already in flight on the
// device when a request was issued. Class 0 (nothing else in flight) is the
// drive's own latency, free of load.
type InflightClass int

// The classes, in the order the BPF program indexes them.
const (
	Inflight0 InflightClass = iota
	Inflight1to3
	Inflight4to15
	Inflight16Plus
	numClasses
)

var classNames = [numClasses]string{"0", "1-3", "4-15", "16+"}

func (c InflightClass) String() string {
	if c < 0 || c >= numClasses {
		return fmt.Sprintf("class(%d)", int(c))
	}
	return classNames[c]
}

// Drop reasons, as the BPF program counts them.
var dropNames = map[blockioBlockDrop]string{
	blockioBlockDropBLOCK_DROP_DEVICE_SLOTS: "device_slots_full",
	blockioBlockDropBLOCK_DROP_REQUEST_MAP:  "request_map_full",
	blockioBlockDropBLOCK_DROP_UNMATCHED:    "completion_without_issue",
	blockioBlockDropBLOCK_DROP_TAGWAIT_MAP:  "tag_wait_map_full",
}

const deviceStatsSize = unsafe.Sizeof(blockioBlockDeviceStats{})

// OpStats is what one device saw for one operation.
type OpStats struct {
	Requests     uint64 // completed
	Errors       uint64 // completed with an error status
	QueueUnknown uint64 // issued without a usable queue start time
	Queue        histogram.Hist
	Service      [numClasses]histogram.Hist
}

// DeviceStats is what one disk saw; partitions are folded into it.
type DeviceStats struct {
	Name     string
	Dev      uint32 // MAJOR << 20 | MINOR
	Inflight int64
	Ops      [numOps]OpStats
}

// ServiceAll merges the service time of every in-flight class for op.
func (d *DeviceStats) ServiceAll(op Op) histogram.Hist {
	var h histogram.Hist
	for c := range d.Ops[op].Service {
		h.Add(&d.Ops[op].Service[c])
	}
	return h
}

// Snapshot is one consistent-enough read of the kernel maps: each device is
// read in one system call.
type Snapshot struct {
	Devices []DeviceStats
	Drops   map[string]uint64
}

// Snapshot reads the kernel maps.
func (p *Probe) Snapshot() (*Snapshot, error) {
	if p.devices == nil {
		return nil, errors.New("blockio: probe is closed")
	}
	s := &Snapshot{Drops: make(map[string]uint64, len(dropNames))}
	for reason, name := range dropNames {
		var perCPU []uint64
		if err := p.drops.Lookup(uint32(reason), &perCPU); err != nil {
			return nil, fmt.Errorf("blockio: read drops: %w", err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		s.Drops[name] = n
	}

	var (
		slot  uint32
		raw   blockioBlockDeviceStats
		live  = map[uint32]bool{}
		iter  = p.devices.Iterate()
		byDev = map[uint32]int{}
	)
	for iter.Next(&slot, &raw) {
		if raw.Dev == 0 {
			continue
		}
		live[raw.Dev] = true
		d := convert(&raw, p.names.name(raw.Dev))
		// Two queue slots can name one disk only across a device's
		// removal and re-creation; merge so the series stay one.
		if i, ok := byDev[d.Dev]; ok {
			merge(&s.Devices[i], &d)
			continue
		}
		byDev[d.Dev] = len(s.Devices)
		s.Devices = append(s.Devices, d)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("blockio: read devices: %w", err)
	}
	p.names.forget(live)
	return s, nil
}

func convert(raw *blockioBlockDeviceStats, name string) DeviceStats {
	d := DeviceStats{Name: name, Dev: raw.Dev, Inflight: raw.Inflight}
	for op := range d.Ops {
		o := &d.Ops[op]
		o.Requests = raw.Requests[op]
		o.Errors = raw.Errors[op]
		o.QueueUnknown = raw.QueueUnknown[op]
		o.Queue.Counts = raw.Queue[op]
		o.Queue.SumNs = raw.QueueSumNs[op]
		for c := range o.Service {
			o.Service[c].Counts = raw.Service[op][c]
			o.Service[c].SumNs = raw.ServiceSumNs[op][c]
		}
	}
	return d
}

func merge(dst, src *DeviceStats) {
	dst.Inflight += src.Inflight
	for op := range dst.Ops {
		a, b := &dst.Ops[op], &src.Ops[op]
		a.Requests += b.Requests
		a.Errors += b.Errors
		a.QueueUnknown += b.QueueUnknown
		a.Queue.Add(&b.Queue)
		for c := range a.Service {
			a.Service[c].Add(&b.Service[c])
		}
	}
}

// Device returns the stats of the named disk, or nil.
func (s *Snapshot) Device(name string) *DeviceStats {
	for i := range s.Devices {
		if s.Devices[i].Name == name {
			return &s.Devices[i]
		}
	}
	return nil
}

// requestMapEntries counts the requests remembered in the kernel; it walks
// the map in batches, so it costs a few system calls per scrape.
func (p *Probe) requestMapEntries() (int, error) {
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]uint64, 4096)
		vals   = make([]blockioBlockRequest, 4096)
		total  int
	)
	for {
		n, err := p.requests.BatchLookup(&cursor, keys, vals, nil)
		total += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
