package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nervehq/nerve/internal/buildinfo"
	"github.com/nervehq/nerve/internal/config"
)

// fakeProbe exports one counter and records whether it was closed.
type fakeProbe struct {
	desc   *prometheus.Desc
	closed atomic.Bool
}

func newFakeProbe() *fakeProbe {
	return &fakeProbe{desc: prometheus.NewDesc("nerve_fake_events_total", "Events the fake probe saw.", nil, nil)}
}

func (f *fakeProbe) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f *fakeProbe) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, 42)
}
func (f *fakeProbe) Programs() map[string]*ebpf.Program { return nil }
func (f *fakeProbe) Close() error                       { f.closed.Store(true); return nil }

var _ Probe = (*fakeProbe)(nil)

func goodSpec(name string, p *fakeProbe) ProbeSpec {
	return ProbeSpec{
		Name:    name,
		Enabled: func(*config.Config) bool { return true },
		New:     func(*slog.Logger, *config.Config) (Probe, error) { return p, nil },
	}
}

var errAttach = errors.New("attach block_rq_issue: operation not supported")

func brokenSpec(name string) ProbeSpec {
	return ProbeSpec{
		Name:    name,
		Enabled: func(*config.Config) bool { return true },
		New:     func(*slog.Logger, *config.Config) (Probe, error) { return nil, errAttach },
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logBuffer is a logger whose output a test can read while the agent writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nerve.yaml")
	err := os.WriteFile(file, []byte("web:\n  listen_address: \"127.0.0.1:7777\"\nprobes:\n  strict: true\nbpf_stats: true\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	boolean := func(b bool) *bool { return &b }

	tests := []struct {
		name       string
		file       string
		overrides  Overrides
		wantListen string
		wantPath   string
		wantStrict bool
		wantStats  bool
		wantErr    string
	}{
		{name: "defaults", wantListen: ":19648", wantPath: "/metrics"},
		{name: "file over defaults", file: file, wantListen: "127.0.0.1:7777", wantPath: "/metrics", wantStrict: true, wantStats: true},
		{name: "flag over file", file: file,
			overrides:  Overrides{ListenAddress: str(":8888"), ProbesStrict: boolean(false), BPFStats: boolean(false)},
			wantListen: ":8888", wantPath: "/metrics"},
		{name: "flag over defaults",
			overrides:  Overrides{TelemetryPath: str("/nerve"), BPFStats: boolean(true)},
			wantListen: ":19648", wantPath: "/nerve", wantStats: true},
		{name: "bad flag", overrides: Overrides{ListenAddress: str("nope")},
			wantErr: "command-line flags: web.listen_address: must be host:port"},
		{name: "bad flag level", overrides: Overrides{LogLevel: str("loud")},
			wantErr: "command-line flags: log.level: must be debug, info, warn or error"},
		{name: "missing file", file: filepath.Join(dir, "missing.yaml"), wantErr: "missing.yaml: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(tt.file, tt.overrides)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Web.ListenAddress != tt.wantListen {
				t.Errorf("web.listen_address = %q, want %q", cfg.Web.ListenAddress, tt.wantListen)
			}
			if cfg.Web.TelemetryPath != tt.wantPath {
				t.Errorf("web.telemetry_path = %q, want %q", cfg.Web.TelemetryPath, tt.wantPath)
			}
			if cfg.Probes.Strict != tt.wantStrict {
				t.Errorf("probes.strict = %v, want %v", cfg.Probes.Strict, tt.wantStrict)
			}
			if cfg.BPFStats != tt.wantStats {
				t.Errorf("bpf_stats = %v, want %v", cfg.BPFStats, tt.wantStats)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHTTP(t *testing.T) {
	cfg := config.Default()
	cfg.Web.TelemetryPath = "/nerve/metrics"
	a, err := newAgent(discard(), cfg, Options{Probes: []ProbeSpec{goodSpec("fake", newFakeProbe())}, Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	a.serving.Store(true)
	srv := httptest.NewServer(a.handler(cfg.Web.TelemetryPath))
	defer srv.Close()

	tests := []struct {
		path       string
		wantStatus int
		want       []string
	}{
		{"/nerve/metrics", http.StatusOK, []string{
			`nerve_probe_attached{probe="fake"} 1`,
			`nerve_fake_events_total 42`,
			`nerve_scrape_collector_duration_seconds{probe="fake"}`,
			`nerve_build_info{bpf_object_sha256="` + buildinfo.BPFObjectSHA256() + `",goversion="` + runtime.Version() + `",revision="unknown",version="1.2.3"} 1`,
			`go_goroutines`,
			`process_start_time_seconds`,
			`promhttp_metric_handler_requests_total`,
		}},
		{"/healthz", http.StatusOK, []string{"ok\n"}},
		{"/", http.StatusOK, []string{`<a href="/nerve/metrics">`, `<a href="/healthz">`}},
		{"/metrics", http.StatusNotFound, nil},
		{"/nope", http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := get(t, srv.URL+tt.path)
			if status != tt.wantStatus {
				t.Errorf("GET %s = %d, want %d", tt.path, status, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s body lacks %q:\n%s", tt.path, w, body)
				}
			}
		})
	}

	a.serving.Store(false)
	if status, body := get(t, srv.URL+"/healthz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz while shutting down = %d %q, want 503", status, body)
	}
}

func TestProbeFailsNonStrict(t *testing.T) {
	good := newFakeProbe()
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := newAgent(logger, config.Default(), Options{Probes: []ProbeSpec{brokenSpec("blockio"), goodSpec("fake", good)}})
	if err != nil {
		t.Fatalf("newAgent = %v, want the agent to run without the broken probe", err)
	}
	defer a.close()

	want := `
# HELP nerve_probe_attached Whether the probe's BPF programs are loaded and attached (1), or not (0): it failed to start, or runs on a fallback without BPF (see the log). Only enabled probes are listed.
# TYPE nerve_probe_attached gauge
nerve_probe_attached{probe="blockio"} 0
nerve_probe_attached{probe="fake"} 1
`
	if err := testutil.GatherAndCompare(a.registry, strings.NewReader(want), "nerve_probe_attached"); err != nil {
		t.Error(err)
	}
	// A probe that never started has no collect time.
	if got := testutil.CollectAndCount(a.probes, "nerve_scrape_collector_duration_seconds"); got != 1 {
		t.Errorf("nerve_scrape_collector_duration_seconds: %d series, want 1 (the attached probe)", got)
	}
	if got := logs.String(); !strings.Contains(got, "probe=blockio") || !strings.Contains(got, errAttach.Error()) {
		t.Errorf("log does not name the probe and its error:\n%s", got)
	}

	// And it keeps serving.
	a.serving.Store(true)
	srv := httptest.NewServer(a.handler("/metrics"))
	defer srv.Close()
	if status, _ := get(t, srv.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", status)
	}
}

func TestProbeFailsStrict(t *testing.T) {
	cfg := config.Default()
	cfg.Probes.Strict = true
	started := newFakeProbe()
	_, err := newAgent(discard(), cfg, Options{Probes: []ProbeSpec{goodSpec("fake", started), brokenSpec("blockio")}})
	if err == nil {
		t.Fatal("newAgent = nil error, want the broken probe's error under probes.strict")
	}
	if !errors.Is(err, errAttach) {
		t.Errorf("error %v does not wrap the probe's error", err)
	}
	if !strings.Contains(err.Error(), "probe blockio: ") {
		t.Errorf("error %q does not name the probe", err)
	}
	if !started.closed.Load() {
		t.Error("the probe started before the failure was not closed")
	}
}

func TestDisabledProbe(t *testing.T) {
	called := false
	spec := ProbeSpec{
		Name:    "off",
		Enabled: func(*config.Config) bool { return false },
		New: func(*slog.Logger, *config.Config) (Probe, error) {
			called = true
			return newFakeProbe(), nil
		},
	}
	a, err := newAgent(discard(), config.Default(), Options{Probes: []ProbeSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if called {
		t.Error("a disabled probe was started")
	}
	if n := testutil.CollectAndCount(a.probes, "nerve_probe_attached"); n != 0 {
		t.Errorf("nerve_probe_attached has %d series for a disabled probe, want 0", n)
	}
}

func TestBlockIOFollowsConfig(t *testing.T) {
	spec := blockioProbe(nil)
	cfg := config.Default()
	if !spec.Enabled(cfg) {
		t.Error("blockio disabled by default")
	}
	cfg.Probes.BlockIO.Enabled = false
	if spec.Enabled(cfg) {
		t.Error("blockio enabled though probes.blockio.enabled is false")
	}
}

func TestSelfMetricsGolden(t *testing.T) {
	a, err := newAgent(discard(), config.Default(), Options{
		Probes:   []ProbeSpec{goodSpec("fake", newFakeProbe()), brokenSpec("blockio")},
		Version:  "0.1.0",
		Revision: "abc123",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	golden, err := os.ReadFile("testdata/self.metrics")
	if err != nil {
		t.Fatal(err)
	}
	// goversion depends on the toolchain that runs the test.
	want := strings.ReplaceAll(string(golden), "GOVERSION", runtime.Version())
	want = strings.ReplaceAll(want, "BPFSHA256", buildinfo.BPFObjectSHA256())
	err = testutil.GatherAndCompare(a.registry, strings.NewReader(want),
		"nerve_probe_attached", "nerve_build_info", "nerve_fake_events_total")
	if err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(a.registry, "nerve_probe_attached", "nerve_build_info", "nerve_scrape_collector_duration_seconds"); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestServe runs the server on a real socket: it serves, reloads the log
// level on a reload signal, keeps the level when the file turns bad, and
// shuts down cleanly when the context ends.
func TestServe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nerve.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: info\n")
	cfg, err := LoadConfig(file, Overrides{})
	if err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))
	probe := newFakeProbe()
	reload := make(chan os.Signal)
	opts := Options{ConfigFile: file, LogLevel: level, Reload: reload, Probes: []ProbeSpec{goodSpec("fake", probe)}}

	a, err := newAgent(logger, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer a.close()
		done <- a.serve(ctx, ln, cfg, opts)
	}()
	base := "http://" + ln.Addr().String()

	if status, body := get(t, base+"/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", status, body)
	}

	// Serve reads the file after it takes the signal, so each step waits
	// for the reload's log line before the file changes again.
	reloads := 0
	step := func(content string) {
		t.Helper()
		write(content)
		reload <- nil
		reloads++
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(logs.String(), `msg="config reload`) < reloads {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d not logged:\n%s", reloads, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	step("log:\n  level: debug\nprobes:\n  strict: true\n")
	step("log:\n  level: [")
	step("log:\n  level: nonsense\n")
	if got := level.Level(); got != slog.LevelDebug {
		t.Errorf("log level after reloads = %v, want DEBUG (from the last good file)", got)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, `nerve_probe_attached{probe="fake"} 1`) {
		t.Errorf("metrics after reloads lack the probe:\n%s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve = %v, want nil after cancel", err)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("serve did not return after cancel")
	}
	if !probe.closed.Load() {
		t.Error("probe not closed at shutdown")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}

	got := logs.String()
	for _, want := range []string{
		`msg="log level changed" level=debug`,
		`msg="config changes take effect only after a restart" settings=probes.strict`,
		`msg="config reload failed; keeping the running config"`,
		`invalid YAML`,
		`log.level: must be debug, info, warn or error, got \"nonsense\"`,
		`msg="shutting down"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}
