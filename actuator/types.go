// Package actuator turns nerve's signals into decisions: small local rules
// diagnose (actuator/diagnose) against the operator's goals
// (actuator/goals), the action ladder picks the least risky action that can
// clear a diagnosis (actuator/ladder), actions carry it out
// (actuator/actions), and every decision is explained and kept
// (actuator/report). This file holds the vocabulary those packages share.
//
// Data flows one way: probes -> Sample -> diagnose -> ladder -> actions. The
// actuator never imports a probe package: it sees the signals through the
// Sample it is handed.
package actuator

import (
	"errors"
	"time"
)

// Kind is a diagnosis.
type Kind string

// The diagnoses.
const (
	SlowDrive    Kind = "slow_drive"     // the drive's own latency (in-flight 0) is above goal: replace it
	DiskOverload Kind = "disk_overload"  // queue time high, drive latency normal: less work
	CPUOverload  Kind = "cpu_overload"   // run-queue delay of the target above goal: more cores
	MemoryStall  Kind = "memory_stall"   // page-fault stalls of the target above goal
	QueryOfDeath Kind = "query_of_death" // the JVM is dying slowly (thrash bucket over, or stopped too much)
	FailedDrive  Kind = "failed_drive"   // the canary I/O on a data mount errs or times out
)

// Kinds lists every diagnosis, in a stable order.
var Kinds = []Kind{SlowDrive, DiskOverload, CPUOverload, MemoryStall, QueryOfDeath, FailedDrive}

// Sample is one look at the node's signals, taken every tick (a few seconds)
// by the agent from its probes. Quantiles are over the tick's window (the
// difference of two histogram reads), in seconds; NaN when nothing happened.
type Sample struct {
	At      time.Time
	Devices map[string]DeviceSample // by device name
	// RunQueueP99 is the target's run-queue delay p99 (the database's
	// threads), or the node's when no target is set.
	RunQueueP99 float64
	// PageFaultStallP99 and PageFaultStallSeconds are the target's page-fault
	// stalls over the window: the p99 of one stall and the total time lost.
	PageFaultStallP99     float64
	PageFaultStallSeconds float64
	JVMs                  map[int]JVMSample // by pid
	Canaries              map[string]CanaryResult
	// Context is captured with each diagnosis but never triggers action on
	// its own: CPU use, PSI, memory, IOPS, diskstats.
	Context map[string]float64
}

// DeviceSample is one disk over the window.
type DeviceSample struct {
	ServiceIdleP99 float64 // service time p99 at in-flight 0: the drive's own latency
	ServiceIdleN   uint64  // requests behind it
	// ServiceShallowP99 is the service time p99 of requests issued with 1
	// to 3 others in flight: the drive's latency when it is never idle
	// (saturated, every request issued behind others). It stands in for
	// ServiceIdleP99 when that has too few requests.
	ServiceShallowP99 float64
	ServiceShallowN   uint64
	ServiceP99        float64 // service time p99 at any depth
	QueueP99          float64 // queue time p99
	IOPS              float64
}

// JVMSample is one JVM over the window.
type JVMSample struct {
	Label           string
	StoppedFraction float64 // of the last 60 s
	ThrashLevel     time.Duration
	ThrashOver      bool
}

// CanaryResult is one small direct read and write on a data mount.
type CanaryResult struct {
	Mount   string
	Err     string // "" when it succeeded
	Latency time.Duration
}

// Diagnosis is a rule that has entered: what is wrong, where, and why.
type Diagnosis struct {
	Kind    Kind
	Subject string // the device, the JVM ("pid 1234 (cassandra)"), the mount, or "node"
	// Since is when the rule entered.
	Since time.Time
	// Evidence is the call-to-action: the figures, the thresholds and the
	// durations that made the rule enter.
	Evidence []Evidence
	// Context is what the node looked like when the rule entered (CPU use,
	// PSI, memory, IOPS): never a reason to act on its own.
	Context map[string]float64
}

// Evidence is one figure against its goal.
type Evidence struct {
	Signal    string        // e.g. "disk.service_idle_p99{device=sdb}"
	Value     float64       // seconds, a fraction, or a count, as Unit says
	Unit      string        // what Value and Threshold count: seconds, fraction, count, bool
	Threshold float64       // the goal Value was held against, in the same unit
	For       time.Duration // how long it has held
}

// Rung is a step of the action ladder, lowest risk first.
type Rung int

// The rungs.
const (
	LiveControl      Rung = 1 // nodetool / JMX / CQL, the database keeps serving
	RestartSidecar   Rung = 2 // a non-database unit
	RestartDatabase  Rung = 3 // stops the database: needs the rack lock
	TransferAndExit  Rung = 4 // stops the database: needs the rack lock
	ExitWithoutTrans Rung = 5 // stops the database: needs the rack lock
)

// StopsDatabase says whether a rung takes the database down.
func (r Rung) StopsDatabase() bool { return r >= RestartDatabase }

// Mode is how far the actuator may go on a rung.
type Mode string

// The modes.
const (
	Observe Mode = "observe" // diagnose only
	Advise  Mode = "advise"  // decide and explain, do not act
	Enforce Mode = "enforce" // act
)

// Lock is the rack lock the manager grants (manager/, a separate issue).
// Actions that stop the database hold one.
type Lock interface {
	// Acquire asks for the rack lock for an operation; the token is the
	// fencing token every step carries.
	Acquire(op, requestID string) (Grant, error)
	// Validate checks, right before the database is stopped, that the grant
	// still holds (a linearizable read at the manager).
	Validate(g Grant) error
	// Release gives the lock back.
	Release(g Grant) error
}

// Grant is a held rack lock.
type Grant struct {
	ID    string
	Token uint64
}

// Sentinel errors shared by the actuator's packages.
var (
	// ErrLockDenied means the rack lock was not granted: another rack is
	// down, or there is no manager.
	ErrLockDenied = errors.New("rack lock denied")
	// ErrRateLimited means a guard refused the action for now.
	ErrRateLimited = errors.New("rate limited")
	// ErrCrashLoop means the database was restarted too often: stop and
	// call a human.
	ErrCrashLoop = errors.New("crash-loop guard tripped")
)
