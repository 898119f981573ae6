package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// Agent is the nerve agent as a benchmark runs it, one of its tracers.
type Agent struct {
	Bin    string // the nerve binary
	Listen string // where it listens during the bench; "" is a free port on 127.0.0.1
}

// Flags adds -nerve and -listen, which set a's fields, to fs.
func (a *Agent) Flags(fs *flag.FlagSet) {
	fs.StringVar(&a.Bin, "nerve", "bin/nerve", "nerve binary; built from ./cmd/nerve when missing")
	fs.StringVar(&a.Listen, "listen", "", "address the agent listens on during the bench (default: a free port on 127.0.0.1)")
}

// BuildIfMissing builds the agent when there is no file at Bin.
func (a Agent) BuildIfMissing(ctx context.Context) error {
	if _, err := os.Stat(a.Bin); errors.Is(err, os.ErrNotExist) {
		log.Printf("building %s", a.Bin)
		return BuildNerve(ctx, a.Bin)
	}
	return nil
}

// Start starts the agent with the named probes on and the others off, its
// BPF run-time statistics on, and its config and output in dir (nerve.yaml,
// nerve.log), and waits until it answers on its listen address. The tracer
// is called "nerve".
func (a Agent) Start(ctx context.Context, dir string, probes ...string) (*Tracer, error) {
	listen := a.Listen
	if listen == "" {
		// Not the agent's own port: an agent may already be running.
		var err error
		if listen, err = FreePort(); err != nil {
			return nil, err
		}
	}
	cfg := filepath.Join(dir, "nerve.yaml")
	if err := os.WriteFile(cfg, NerveConfig(listen, probes...), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(a.Bin, "agent", "--bpf-stats", "--config.file="+cfg)
	t, err := StartTracer("nerve", cmd, filepath.Join(dir, "nerve.log"))
	if err != nil {
		return nil, err
	}
	if err := t.WaitHealthy(ctx, "http://"+listen+"/healthz", 30*time.Second); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// agentProbes are the agent's probes, in the order NerveConfig lists them.
var agentProbes = []string{"blockio", "runqueue", "pagefault", "jvm"}

// NerveConfig is the agent's config for a bench: listening on listen, with
// the probes named on and every other one off, so that the BPF run time the
// bench reads is only that of the probes it measures.
func NerveConfig(listen string, probes ...string) []byte {
	b := fmt.Appendf(nil, "web:\n  listen_address: %q\nprobes:\n", listen)
	for _, p := range agentProbes {
		b = fmt.Appendf(b, "  %s: {enabled: %t}\n", p, slices.Contains(probes, p))
	}
	return b
}
