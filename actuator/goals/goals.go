package goals

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/nervehq/nerve/internal/yamlfield"
)

//go:embed default.yaml
var defaultYAML []byte

// Goals is the whole goals document. Each field's yaml tag is its name in
// the file and in error messages.
type Goals struct {
	Disk   Disk   `yaml:"disk"`
	CPU    CPU    `yaml:"cpu"`
	Memory Memory `yaml:"memory"`
	JVM    JVM    `yaml:"jvm"`
	Canary Canary `yaml:"canary"`
}

// Disk holds the goals of each block device.
type Disk struct {
	ServiceIdleP99 IdleRule            `yaml:"service_idle_p99"` // slow_drive
	QueueP99       Rule[time.Duration] `yaml:"queue_p99"`        // disk_overload
}

// CPU holds the goal of the database's run-queue delay.
type CPU struct {
	RunQueueP99 Rule[time.Duration] `yaml:"runqueue_p99"` // cpu_overload
}

// Memory holds the goal of the database's page-fault stalls.
type Memory struct {
	PageFaultStallP99 Rule[time.Duration] `yaml:"pagefault_stall_p99"` // memory_stall
}

// JVM holds the goal of each JVM.
type JVM struct {
	StoppedFraction Rule[float64] `yaml:"stopped_fraction"` // query_of_death
}

// Canary holds the settings of the canary I/O on the data mounts.
type Canary struct {
	Timeout  time.Duration `yaml:"timeout"`
	Failures int           `yaml:"failures"` // consecutive, for failed_drive
}

// Level is what a threshold is: a latency or a plain number (a fraction).
type Level interface{ time.Duration | float64 }

// Rule is one goal with hysteresis: the figure enters after staying above
// Enter for For, and clears after staying below Exit (< Enter) for ClearFor.
type Rule[T Level] struct {
	// Enter is the level the figure must be above to count towards the
	// diagnosis.
	Enter T `yaml:"enter"`
	// Exit is the level the figure must be below to count towards clearing
	// it; below Enter, so a figure wandering between the two changes
	// nothing (hysteresis).
	Exit T `yaml:"exit"`
	// For is how long the figure must stay above Enter before the rule
	// enters; 0 enters at once.
	For time.Duration `yaml:"for"`
	// ClearFor is how long the figure must stay below Exit before the rule
	// clears.
	ClearFor time.Duration `yaml:"clear_for"`
}

// Levels returns Enter and Exit as the Sample carries them: latencies in
// seconds, fractions as they are.
func (r Rule[T]) Levels() (enter, exit float64) {
	return level(r.Enter), level(r.Exit)
}

func level[T Level](v T) float64 {
	switch v := any(v).(type) {
	case time.Duration:
		return v.Seconds()
	case float64:
		return v
	}
	panic("unreachable")
}

// IdleRule is the slow_drive goal: a Rule on the drive's own latency that
// only counts windows with at least MinRequests requests issued at
// in-flight 0.
type IdleRule struct {
	Rule[time.Duration] `yaml:",inline"`
	MinRequests         uint64 `yaml:"min_requests"`
}

// Default returns the embedded default goals.
func Default() Goals {
	var g Goals
	if err := yamlfield.Decode(defaultYAML, &g, "goals file"); err != nil {
		// default.yaml is compiled in and TestDefault checks it: a broken
		// build, not a runtime condition.
		panic(fmt.Sprintf("goals: embedded default.yaml: %v", err))
	}
	return g
}

// Parse decodes data on top of the defaults and validates the result: data
// needs only the fields that differ; empty data gives the defaults.
func Parse(data []byte) (Goals, error) {
	g, err := parse(data)
	if err != nil {
		return Goals{}, fmt.Errorf("goals: %w", err)
	}
	return g, nil
}

func parse(data []byte) (Goals, error) {
	g := Default()
	if err := yamlfield.Decode(data, &g, "goals file"); err != nil {
		return Goals{}, err
	}
	if err := g.validate(); err != nil {
		return Goals{}, err
	}
	return g, nil
}

// Load reads and parses the goals file at path.
func Load(path string) (Goals, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Goals{}, fmt.Errorf("goals: %w", err)
	}
	g, err := parse(data)
	if err != nil {
		return Goals{}, fmt.Errorf("goals %s: %w", path, err)
	}
	return g, nil
}

// Validate checks every goal and returns all problems found (errors.As finds
// each *FieldError), or nil. Parse and Load call it; call it again after
// changing Goals in code.
func (g Goals) Validate() error {
	if err := g.validate(); err != nil {
		return fmt.Errorf("goals: %w", err)
	}
	return nil
}

func (g Goals) validate() error {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	checkRule(add, "disk.service_idle_p99", g.Disk.ServiceIdleP99.Rule, math.Inf(1))
	checkRule(add, "disk.queue_p99", g.Disk.QueueP99, math.Inf(1))
	checkRule(add, "cpu.runqueue_p99", g.CPU.RunQueueP99, math.Inf(1))
	checkRule(add, "memory.pagefault_stall_p99", g.Memory.PageFaultStallP99, math.Inf(1))
	// A stopped fraction is at most 1: an enter above it would never fire.
	checkRule(add, "jvm.stopped_fraction", g.JVM.StoppedFraction, 1)
	if g.Canary.Timeout <= 0 {
		add("canary.timeout", "must be positive, got %v", g.Canary.Timeout)
	}
	if g.Canary.Failures < 1 {
		add("canary.failures", "must be at least 1, got %d", g.Canary.Failures)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkRule checks one rule; its thresholds must lie in (0, limit].
func checkRule[T Level](add func(path, format string, args ...any), path string, r Rule[T], limit float64) {
	enter, exit := r.Levels()
	okEnter := enter > 0 && enter <= limit && !math.IsInf(enter, 1)
	switch {
	case !okEnter && limit < math.Inf(1):
		add(path+".enter", "must be above 0 and at most %v, got %v", limit, r.Enter)
	case !okEnter:
		add(path+".enter", "must be positive, got %v", r.Enter)
	}
	switch {
	case !(exit > 0) || math.IsInf(exit, 1):
		// Clearing needs a figure below exit, so 0 would never clear.
		add(path+".exit", "must be positive, got %v", r.Exit)
	case okEnter && exit >= enter:
		add(path+".exit", "must be below enter (%v), got %v", r.Enter, r.Exit)
	}
	if r.For < 0 {
		add(path+".for", "must not be negative, got %v", r.For)
	}
	if r.ClearFor < 0 {
		add(path+".clear_for", "must not be negative, got %v", r.ClearFor)
	}
}
