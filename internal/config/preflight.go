package config

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// Preflight is what `nerve preflight` checks before the database starts on
// a new node: a burn-in of each data mount, the network to peers and
// managers, and whether the block I/O probe can run.
type Preflight struct {
	// Mounts are the data mounts to burn in; empty: actuator.data_mounts.
	Mounts  []string         `yaml:"mounts"`
	Disk    PreflightDisk    `yaml:"disk"`
	Network PreflightNetwork `yaml:"network"`
	// BPF checks that the kernel runs the block I/O probe (loads and
	// attaches it for a moment).
	BPF bool `yaml:"bpf"`
}

// PreflightDisk is the direct-I/O burn-in run on a scratch file in each
// data mount.
type PreflightDisk struct {
	// SizeMiB is the scratch file's size, the span random offsets fall in.
	SizeMiB int `yaml:"size_mib"`
	// Duration is how long random I/O runs, after the file is written.
	Duration time.Duration `yaml:"duration"`
	// BlockSize is each request's size, a multiple of 4096.
	BlockSize int `yaml:"block_size"`
	// Pattern is randread, randwrite or randrw (half each).
	Pattern string `yaml:"pattern"`
	// Depth is how many requests are in flight at once.
	Depth int `yaml:"depth"`
	// MaxP99 is the goal for the p99 latency; 0 takes the slow_drive enter
	// threshold of the goals in force (disk.service_idle_p99.enter).
	MaxP99 time.Duration `yaml:"max_p99"`
	// MinMiBPerSecond is the goal for throughput; 0 sets none.
	MinMiBPerSecond float64 `yaml:"min_mib_per_second"`
	// Timeout bounds one mount's whole burn-in, writing the file included:
	// a drive that hangs fails instead of holding up the start forever.
	Timeout time.Duration `yaml:"timeout"`
}

// PreflightNetwork is the TCP connect probe of peers and managers.
type PreflightNetwork struct {
	// Peers are host:port addresses to connect to (other nodes' storage
	// or CQL ports).
	Peers []string `yaml:"peers"`
	// Manager probes manager.endpoints too, and asks each GET /healthz.
	Manager bool `yaml:"manager"`
	// Attempts is how many connects to each address the p99 is over.
	Attempts int `yaml:"attempts"`
	// Timeout bounds each connect and each /healthz request.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConnectP99 is the goal for the p99 connect time.
	MaxConnectP99 time.Duration `yaml:"max_connect_p99"`
}

// Preflight limits: what a burn-in before start can sensibly take.
const (
	MaxPreflightSizeMiB  = 64 << 10 // 64 GiB
	MaxPreflightDuration = 10 * time.Minute
	MaxPreflightDepth    = 64
	MaxPreflightBlock    = 1 << 20
	MaxPreflightAttempts = 1000
)

// validate checks the preflight section; Validate calls it.
func (p Preflight) validate() Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for _, m := range p.Mounts {
		if !filepath.IsAbs(m) || filepath.Clean(m) != m {
			add("preflight.mounts", "must be clean absolute paths, got %q", m)
		}
	}
	d := p.Disk
	if d.SizeMiB < 1 || d.SizeMiB > MaxPreflightSizeMiB {
		add("preflight.disk.size_mib", "must be from 1 to %d, got %d", MaxPreflightSizeMiB, d.SizeMiB)
	}
	if d.Duration < 100*time.Millisecond || d.Duration > MaxPreflightDuration {
		add("preflight.disk.duration", "must be from 100ms to %v, got %v", MaxPreflightDuration, d.Duration)
	}
	if d.BlockSize < 4096 || d.BlockSize > MaxPreflightBlock || d.BlockSize%4096 != 0 {
		add("preflight.disk.block_size", "must be a multiple of 4096 up to %d, got %d", MaxPreflightBlock, d.BlockSize)
	} else if d.SizeMiB >= 1 && int64(d.SizeMiB)<<20 < int64(d.BlockSize) {
		add("preflight.disk.block_size", "must not exceed preflight.disk.size_mib (%d MiB), got %d", d.SizeMiB, d.BlockSize)
	}
	switch d.Pattern {
	case "randread", "randwrite", "randrw":
	default:
		add("preflight.disk.pattern", "must be randread, randwrite or randrw, got %q", d.Pattern)
	}
	if d.Depth < 1 || d.Depth > MaxPreflightDepth {
		add("preflight.disk.depth", "must be from 1 to %d, got %d", MaxPreflightDepth, d.Depth)
	}
	if d.MaxP99 < 0 {
		add("preflight.disk.max_p99", "must not be negative (0 takes the slow_drive goal), got %v", d.MaxP99)
	}
	if !(d.MinMiBPerSecond >= 0) || math.IsInf(d.MinMiBPerSecond, 0) {
		add("preflight.disk.min_mib_per_second", "must be a number from 0 (no goal) up, got %v", d.MinMiBPerSecond)
	}
	if d.Timeout <= d.Duration {
		add("preflight.disk.timeout", "must be longer than preflight.disk.duration (%v), got %v", d.Duration, d.Timeout)
	}
	n := p.Network
	for _, peer := range n.Peers {
		if err := checkPeer(peer); err != nil {
			add("preflight.network.peers", "%v", err)
		}
	}
	if n.Attempts < 1 || n.Attempts > MaxPreflightAttempts {
		add("preflight.network.attempts", "must be from 1 to %d, got %d", MaxPreflightAttempts, n.Attempts)
	}
	if n.Timeout <= 0 || n.Timeout > time.Minute {
		add("preflight.network.timeout", "must be from 1ns to 1m, got %v", n.Timeout)
	}
	if n.MaxConnectP99 <= 0 {
		add("preflight.network.max_connect_p99", "must be positive, got %v", n.MaxConnectP99)
	}
	return errs
}

// checkPeer checks a host:port with a numeric port.
func checkPeer(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("must be host:port, like \"10.0.0.2:7000\", got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be a number from 1 to 65535, got %q in %q", port, addr)
	}
	return nil
}
