package targets

import (
	"time"

	"github.com/prometheus/procfs"
)

// Options is what a probe that breaks its figures down by target is given.
type Options struct {
	Targets []Target
	// Refresh is how often targets are resolved again (new processes,
	// restarted units); 0 means 2 s.
	Refresh time.Duration
	// Resolver reads cgroupfs and procfs; zero means the host's.
	Resolver Resolver
}

// Defaults checks the targets, of which the probe's kernel side can tell at
// most max apart, fills in a zero Refresh and Resolver, and opens the
// resolver's procfs, where the probe reads what it reports without BPF.
func (o *Options) Defaults(max int) (procfs.FS, error) {
	if err := ValidateAll(o.Targets, max); err != nil {
		return procfs.FS{}, err
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Resolver == (Resolver{}) {
		o.Resolver = Default()
	}
	return procfs.NewFS(o.Resolver.Proc)
}
