package flight

import "time"

// Signal names the probe an outlier comes from.
type Signal string

// The signals, in the order reports list them.
const (
	BlockIO   Signal = "blockio"
	RunQueue  Signal = "runqueue"
	PageFault Signal = "pagefault"
	Safepoint Signal = "safepoint"
)

// Signals lists every Signal.
var Signals = []Signal{BlockIO, RunQueue, PageFault, Safepoint}

// Event is one outlier: an event slower than its signal's threshold, with
// who suffered it and why. Exactly one of the per-signal parts is set, the
// one Signal names.
type Event struct {
	Signal Signal    `json:"signal"`
	Time   time.Time `json:"time"` // wall clock when it ended
	// Latency is the outlier's figure: for block I/O queue plus service
	// time, for run-queue waits the delay, for page faults the stall, for
	// safepoints the pause.
	Latency time.Duration `json:"latency_ns"`
	// Who suffered it: the process (thread group) and thread, its name,
	// and its cgroup v2 id and path ("" when unknown).
	PID      int    `json:"pid"`
	TID      int    `json:"tid,omitempty"`
	Comm     string `json:"comm"`
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	Cgroup   string `json:"cgroup,omitempty"`

	Block     *BlockEvent     `json:"block,omitempty"`
	RunQueue  *RunQueueEvent  `json:"runqueue,omitempty"`
	PageFault *PageFaultEvent `json:"pagefault,omitempty"`
	Safepoint *SafepointEvent `json:"safepoint,omitempty"`
}

// BlockEvent is a block request slower than the threshold. PID is the
// task that issued it to the driver (for requests dispatched from a
// kernel worker, that worker).
type BlockEvent struct {
	Device   string        `json:"device"` // e.g. sda, nvme0n1, loop3
	Op       string        `json:"op"`     // read, write, flush, discard, other
	Sector   uint64        `json:"sector"`
	Bytes    uint32        `json:"bytes"`
	Queue    time.Duration `json:"queue_ns"`
	Service  time.Duration `json:"service_ns"`
	Inflight uint32        `json:"inflight"` // requests already in flight on the device at issue
}

// RunQueueEvent is a wait for a CPU longer than the threshold: the task
// that waited (Event.PID/TID/Comm) and what ran on the CPU when it got it.
type RunQueueEvent struct {
	CPU      int    `json:"cpu"`
	PrevPID  int    `json:"prev_pid"` // thread group of the task switched out
	PrevTID  int    `json:"prev_tid"`
	PrevComm string `json:"prev_comm"`
}

// PageFaultEvent is a page fault stall longer than the threshold. File and
// Offset name what the faulting address maps when it is a file mapping
// (Offset is the byte offset in the file); both empty for anonymous memory
// or when the mapping could not be read.
type PageFaultEvent struct {
	Address uint64 `json:"address"`
	File    string `json:"file,omitempty"`
	Offset  uint64 `json:"offset,omitempty"`
}

// SafepointEvent is a JVM safepoint whose pause exceeded the threshold.
type SafepointEvent struct {
	JVM             string        `json:"jvm"` // the JVM's label (target or main class)
	VMOperation     string        `json:"vm_operation,omitempty"`
	TimeToSafepoint time.Duration `json:"time_to_safepoint_ns"`
	Pause           time.Duration `json:"pause_ns"`
}

// Sink receives outliers. Probes call Record from their reader goroutines;
// implementations must be safe for concurrent use and must not block.
type Sink interface {
	Record(Event)
}

// Drops are a probe's counts of outliers it could not deliver, cumulative
// since it started: RateLimited by the kernel-side rate limit, Lost when
// the BPF ring buffer was full. A probe with an outlier path has a method
// OutlierDrops() Drops.
type Drops struct {
	RateLimited uint64
	Lost        uint64
}
