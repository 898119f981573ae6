//go:build !386 && !amd64

package probe

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/jvm/thrash"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/targets"
)

// Config says which JVMs to watch.
type Config struct {
	Targets      []targets.Target
	Thrash       thrash.Config
	Outliers     flight.Sink
	OutlierPause time.Duration
	Attach       AttachMode
}

// DefaultOutlierPause is the outlier threshold when the config leaves it 0.
const DefaultOutlierPause = 100 * time.Millisecond

// Probe is not available on this architecture.
type Probe struct{}

// New fails: the probe reads x86-64 registers.
func New(logger *slog.Logger, cfg Config) (*Probe, error) {
	return nil, fmt.Errorf("jvm: USDT argument reading is implemented for x86-64 only, not %s", runtime.GOARCH)
}

func (p *Probe) Describe(chan<- *prometheus.Desc)   {}
func (p *Probe) Collect(chan<- prometheus.Metric)   {}
func (p *Probe) Programs() map[string]*ebpf.Program { return nil }
func (p *Probe) Close() error                       { return nil }

// AttachMode is none: the probe does not run here.
func (p *Probe) AttachMode() AttachMode { return "" }

// JVM is one watched JVM.
type JVM struct {
	PID    int
	Label  string
	Probes bool
}

// OutlierDrops counts nothing.
func (p *Probe) OutlierDrops() flight.Drops { return flight.Drops{} }

// JVMs lists no JVMs.
func (p *Probe) JVMs() []JVM { return nil }

// StoppedFraction knows no JVM.
func (p *Probe) StoppedFraction(pid int, window time.Duration) (float64, bool) { return 0, false }

// Thrash knows no JVM.
func (p *Probe) Thrash(pid int) *thrash.Detector { return nil }

// Now is the present in the thrash detectors' time.
func Now() time.Time { return time.Now() }
