//go:build !386 && !amd64

package probe

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/probes/targets"
)

// Config says which JVMs to watch.
type Config struct {
	Targets []targets.Target
}

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
