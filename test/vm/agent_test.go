// Package vm holds nerve's privileged end-to-end scenarios: they build the
// real binary, run it as an operator would, create real conditions and read
// what the agent reports over HTTP. They run in CI and inside the Vagrant VMs.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/fio"
	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
)

// agent is a running `nerve agent` process.
type agent struct {
	addr   string
	cmd    *exec.Cmd
	stderr *nervetest.SyncBuffer
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's answer, set before exited closes
}

func startAgent(t *testing.T, bin string, args ...string) *agent {
	t.Helper()
	a := &agent{addr: nervetest.FreeAddr(t), stderr: &nervetest.SyncBuffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append([]string{"agent", "--web.listen-address=" + a.addr}, args...)...)
	a.cmd.Stderr = a.stderr
	a.cmd.Stdout = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-a.exited
			t.Errorf("agent did not stop within 10s of SIGINT")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", a.stderr)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a
			}
		}
		select {
		case <-a.exited:
			t.Fatalf("agent exited before it became healthy (%v); log:\n%s", a.err, a.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("agent did not become healthy within 20s; log:\n%s", a.stderr)
	return nil
}

// kill SIGKILLs the agent and reaps it.
func (a *agent) kill(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
}

func (a *agent) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s\n%s", resp.Status, b)
	}
	return string(b)
}

// The agent, run as operators run it, exports the block I/O series for a
// real device, and Prometheus' own linter finds nothing to say about them.
func TestAgentServesBlockMetrics(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "fio", "losetup", "promtool", "go")
	bin := nervetest.Binary(t)
	a := startAgent(t, bin, "--bpf-stats")

	dir, err := os.MkdirTemp("", "nerve-vm-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.CleanupLeftovers(dir) })
	disk, err := faults.NewFastDisk(dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := fio.Run(ctx, "--name=e2e", "--filename="+disk.Device(), "--direct=1", "--rw=randrw",
		"--bs=4k", "--iodepth=4", "--ioengine=libaio", "--number_ios=3000", "--size=64m")
	if err != nil {
		t.Fatal(err)
	}
	reads, writes := r.TotalIOs()

	body := a.scrape(t)
	dev := disk.Name()
	for _, want := range []string{
		`nerve_probe_attached{probe="blockio"} 1`,
		fmt.Sprintf(`nerve_block_service_seconds_bucket{device=%q,inflight="0",op="read",le="+Inf"}`, dev),
		fmt.Sprintf(`nerve_block_queue_seconds_count{device=%q,op="read"}`, dev),
		fmt.Sprintf(`nerve_block_errors_total{device=%q,op="read"} 0`, dev),
		`nerve_probe_drops_total{probe="blockio",reason="request_map_full"} 0`,
		`nerve_bpf_map_capacity{map="block_requests",probe="blockio"}`,
		`nerve_bpf_program_runs_total{probe="blockio",program="nrv_rq_issue"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// udev may read a new device once or twice; fio's count must match within 1%.
	for op, want := range map[string]uint64{"read": reads, "write": writes} {
		got := metricValue(t, body, "nerve_block_requests_total", map[string]string{"device": dev, "op": op})
		if d := got - float64(want); d < 0 || d > 0.01*float64(want) {
			t.Errorf("nerve_block_requests_total{op=%q} = %g, fio completed %d", op, got, want)
		}
	}

	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(body)
	out, err := check.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// metricValue finds one sample in a text exposition.
func metricValue(t *testing.T, body, name string, labels map[string]string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("/metrics has no %s%v", name, labels)
	return 0
}

// Bad input never panics: the agent says what is wrong and exits non-zero.
func TestAgentRefusesBadStarts(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "go", "setpriv")
	bin := nervetest.Binary(t)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("probes:\n  blockio:\n    buckets_per_octave: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("probes:\n  blokio: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  []string
		want string
	}{
		{"bad value", []string{bin, "agent", "--config.file=" + bad}, "buckets_per_octave"},
		{"unknown field", []string{bin, "agent", "--config.file=" + unknown}, "blokio"},
		{"missing file", []string{bin, "agent", "--config.file=/nonexistent/nerve.yaml"}, "/nonexistent/nerve.yaml"},
		{"not root", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "agent",
			"--web.listen-address=" + nervetest.FreeAddr(t)}, "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, tt.cmd[0], tt.cmd[1:]...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want a non-zero exit\n%s", err, out)
			}
			if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
				t.Errorf("output looks like a panic:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not name %q:\n%s", tt.want, out)
			}
		})
	}
}
