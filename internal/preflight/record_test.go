package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager"
)

// fakeManager is a manager's POST /v1/reports that keeps what it is sent.
type fakeManager struct {
	mu      sync.Mutex
	reports []manager.Report // guarded by mu
	auth    []string         // guarded by mu
}

func (f *fakeManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/reports" {
		http.NotFound(w, r)
		return
	}
	var rep manager.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reports = append(f.reports, rep)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"index": 7}`))
}

func managerSection(t *testing.T, endpoint string) config.Manager {
	t.Helper()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Manager{Endpoints: []string{endpoint}, TokenFile: token, Node: "db-7"}
}

func testResult() Result {
	start := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	return Result{Kind: "preflight", Node: "db-7", Start: start, End: start.Add(6 * time.Second), Pass: false,
		Checks: []Check{{Kind: "peer", Target: "10.0.0.2:7000", Figure: "10 of 10 connects failed", Goal: "connect p99 ≤ 100ms",
			Reason: "peer 10.0.0.2:7000: 10 of 10 connects failed: connection refused"}}}
}

func TestRecord(t *testing.T) {
	fm := &fakeManager{}
	srv := httptest.NewServer(fm)
	defer srv.Close()
	c, err := ManagerClient(managerSection(t, srv.URL))
	if err != nil || c == nil {
		t.Fatalf("ManagerClient = %v, %v", c, err)
	}
	var logs bytes.Buffer
	RecordOrWarn(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), c, testResult())
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("recording at a working manager warned: %s", logs.String())
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.reports) != 1 {
		t.Fatalf("manager got %d reports, want 1", len(fm.reports))
	}
	rep := fm.reports[0]
	if got, want := fm.auth[0], "Bearer s3cret"; got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if rep.Node != "db-7" || rep.ID != "preflight-20260301T120000.000000005Z" {
		t.Errorf("report node %q id %q", rep.Node, rep.ID)
	}
	var got Result
	if err := json.Unmarshal(rep.Decision, &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "preflight" || got.Pass || len(got.Checks) != 1 || got.Checks[0].Reason != testResult().Checks[0].Reason {
		t.Errorf("recorded decision %s", rep.Decision)
	}
}

// A manager that cannot be reached is a warning, in bounded time.
func TestRecordDeadManager(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	c, err := ManagerClient(managerSection(t, dead))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	start := time.Now()
	RecordOrWarn(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), c, testResult())
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("giving up on a dead manager took %v", took)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "not recorded at the manager") {
		t.Errorf("no warning for a dead manager: %s", logs.String())
	}
}

func TestManagerClientNotConfigured(t *testing.T) {
	for _, m := range []config.Manager{{}, {Endpoints: []string{"http://m1:19649"}}, {TokenFile: "/x"}} {
		if c, err := ManagerClient(m); c != nil || err != nil {
			t.Errorf("ManagerClient(%+v) = %v, %v; want nil, nil", m, c, err)
		}
	}
	if _, err := ManagerClient(config.Manager{Endpoints: []string{"http://m1:19649"}, TokenFile: "/nonexistent/token"}); err == nil ||
		!strings.Contains(err.Error(), "manager.token_file") {
		t.Errorf("missing token file: err %v, want one naming manager.token_file", err)
	}
}

func TestFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Actuator.DataMounts = []string{"/var/lib/cassandra"}
	cfg.Manager.Endpoints = []string{"http://m1:19649"}
	g := goalsWithSlowDrive(t, 40*time.Millisecond)
	s, err := FromConfig(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) != 1 || s.Mounts[0] != "/var/lib/cassandra" {
		t.Errorf("mounts %v, want actuator.data_mounts", s.Mounts)
	}
	if s.Disk.MaxP99 != 40*time.Millisecond {
		t.Errorf("disk p99 goal %v, want the slow_drive enter goal 40ms", s.Disk.MaxP99)
	}
	if s.Disk.Size != 64<<20 || s.Disk.Duration != 5*time.Second || s.Disk.BlockSize != 4096 || s.Disk.Depth != 1 {
		t.Errorf("disk spec %+v, want the defaults 64 MiB, 5s, 4096, depth 1", s.Disk)
	}
	if len(s.Managers) != 1 || s.BPF == nil {
		t.Errorf("managers %v, bpf %v; want the endpoint and a BPF check", s.Managers, s.BPF)
	}

	cfg.Preflight.Mounts = []string{"/data"}
	cfg.Preflight.Disk.MaxP99 = 20 * time.Millisecond
	cfg.Preflight.Network.Manager = false
	cfg.Preflight.BPF = false
	if s, err = FromConfig(cfg, g); err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) != 1 || s.Mounts[0] != "/data" || s.Disk.MaxP99 != 20*time.Millisecond || s.Managers != nil || s.BPF != nil {
		t.Errorf("spec %+v; want preflight.mounts, its own goal, no managers, no BPF", s)
	}
}

func goalsWithSlowDrive(t *testing.T, enter time.Duration) goals.Goals {
	t.Helper()
	g := goals.Default()
	if got := g.Disk.ServiceIdleP99.Enter; got != 50*time.Millisecond {
		t.Errorf("built-in slow_drive enter goal %v, want 50ms (the preflight default says so)", got)
	}
	g.Disk.ServiceIdleP99.Enter = enter
	return g
}
