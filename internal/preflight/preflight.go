package preflight

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager/client"
	"github.com/nervehq/nerve/probes/blockio"
)

// Spec is what one run checks.
type Spec struct {
	// Mounts are the data mounts to burn in, each with Disk.
	Mounts []string
	Disk   DiskSpec
	// Peers are host:port addresses, Managers the managers' API URLs
	// (their /healthz is asked too), each probed with Network.
	Peers    []string
	Managers []string
	Network  NetworkSpec
	// ManagerTLS is the TLS configuration for https managers; nil uses the
	// system's roots.
	ManagerTLS *tls.Config
	// BPF, when not nil, is the block I/O probe's configuration to load
	// and attach it with.
	BPF *blockio.Config
}

// DiskSpec is a mount's burn-in.
type DiskSpec struct {
	Size      int64 // scratch file, bytes
	BlockSize int   // bytes per request, a multiple of 4096
	Duration  time.Duration
	Pattern   string // randread, randwrite, randrw
	Depth     int    // requests in flight
	Timeout   time.Duration
	// MaxP99 is the latency goal; MinBytesPerSecond the throughput goal,
	// 0 for none.
	MaxP99            time.Duration
	MinBytesPerSecond float64
}

// NetworkSpec is the connect probe of each address.
type NetworkSpec struct {
	Attempts      int
	Timeout       time.Duration // each connect, each /healthz request
	MaxConnectP99 time.Duration
}

// Empty reports whether the spec checks nothing at all.
func (s Spec) Empty() bool {
	return len(s.Mounts) == 0 && len(s.Peers) == 0 && len(s.Managers) == 0 && s.BPF == nil
}

// FromConfig builds the spec from a validated configuration and the goals
// in force, which give the disk's p99 goal when preflight.disk.max_p99 is 0.
func FromConfig(cfg *config.Config, g goals.Goals) (Spec, error) {
	p := cfg.Preflight
	s := Spec{
		Mounts: p.Mounts,
		Disk: DiskSpec{
			Size:              int64(p.Disk.SizeMiB) << 20,
			BlockSize:         p.Disk.BlockSize,
			Duration:          p.Disk.Duration,
			Pattern:           p.Disk.Pattern,
			Depth:             p.Disk.Depth,
			Timeout:           p.Disk.Timeout,
			MaxP99:            p.Disk.MaxP99,
			MinBytesPerSecond: p.Disk.MinMiBPerSecond * (1 << 20),
		},
		Peers: p.Network.Peers,
		Network: NetworkSpec{
			Attempts:      p.Network.Attempts,
			Timeout:       p.Network.Timeout,
			MaxConnectP99: p.Network.MaxConnectP99,
		},
	}
	if len(s.Mounts) == 0 {
		s.Mounts = cfg.Actuator.DataMounts
	}
	if s.Disk.MaxP99 == 0 {
		s.Disk.MaxP99 = g.Disk.ServiceIdleP99.Enter
	}
	if p.Network.Manager && len(cfg.Manager.Endpoints) > 0 {
		s.Managers = cfg.Manager.Endpoints
		m := cfg.Manager
		tc, err := client.TLSConfig(m.CAFile, m.CertFile, m.KeyFile)
		if err != nil {
			return Spec{}, fmt.Errorf("manager.ca_file, manager.cert_file, manager.key_file: %w", err)
		}
		s.ManagerTLS = tc
	}
	if p.BPF {
		b := cfg.Probes.BlockIO
		s.BPF = &blockio.Config{BucketsPerOctave: b.BucketsPerOctave, MaxDevices: b.MaxDevices, MaxRequests: b.MaxRequests}
	}
	return s, nil
}

// Result is one run's checks.
type Result struct {
	Kind   string    `json:"kind"` // always "preflight", to tell it from decisions in the manager's history
	Node   string    `json:"node"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Pass   bool      `json:"pass"`
	Checks []Check   `json:"checks"`
}

// Check is one check's outcome. Figure and Goal are for people; the
// figures themselves, in base units, are in Disk, Network or BPF.
type Check struct {
	Kind   string `json:"kind"`   // disk, peer, manager, bpf
	Target string `json:"target"` // the mount, host:port, endpoint URL, or "kernel"
	Figure string `json:"figure"`
	Goal   string `json:"goal"`
	Pass   bool   `json:"pass"`
	// Reason is one line naming the target and the figure, for a failure.
	Reason  string          `json:"reason,omitempty"`
	Disk    *DiskFigures    `json:"disk,omitempty"`
	Network *NetworkFigures `json:"network,omitempty"`
	BPF     *BPFFigures     `json:"bpf,omitempty"`
}

// Name is how the check is named in the table and in its reason.
func (c Check) Name() string {
	if c.Kind == "bpf" {
		return "bpf"
	}
	return c.Kind + " " + c.Target
}

// fail marks c failed with a reason made of its name and what.
func (c *Check) fail(format string, args ...any) {
	c.Pass = false
	c.Reason = c.Name() + ": " + fmt.Sprintf(format, args...)
}

// Run runs every check of spec in turn and returns their outcome. ctx
// ending stops the checks still to run; they fail with the reason.
func Run(ctx context.Context, logger *slog.Logger, node string, spec Spec) Result {
	r := Result{Kind: "preflight", Node: node, Start: time.Now()}
	for _, m := range spec.Mounts {
		r.Checks = append(r.Checks, checkDisk(ctx, logger, m, spec.Disk))
	}
	for _, p := range spec.Peers {
		r.Checks = append(r.Checks, checkPeer(ctx, p, spec.Network))
	}
	for _, e := range spec.Managers {
		r.Checks = append(r.Checks, checkManager(ctx, e, spec.Network, spec.ManagerTLS))
	}
	if spec.BPF != nil {
		r.Checks = append(r.Checks, checkBPF(ctx, logger, *spec.BPF))
	}
	r.End = time.Now()
	r.Pass = true
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.Pass
	}
	return r
}

// Failures returns the reason of every failed check, in order.
func (r Result) Failures() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c.Reason)
		}
	}
	return out
}

// WriteTable writes the checks as an aligned table for people.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tFIGURE\tGOAL\tRESULT\tREASON")
	for _, c := range r.Checks {
		res, reason := "pass", ""
		if !c.Pass {
			// The reason repeats the check's name; the table has it already.
			res, reason = "FAIL", strings.TrimPrefix(c.Reason, c.Name()+": ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name(), c.Figure, c.Goal, res, reason)
	}
	return tw.Flush()
}

// formatDuration prints a measured latency with three significant-ish
// digits: 850µs, 3.1ms, 62.3ms, 1.25s.
func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// formatRate prints bytes per second as MiB/s.
func formatRate(bps float64) string {
	return fmt.Sprintf("%.1f MiB/s", bps/(1<<20))
}
