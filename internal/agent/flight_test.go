package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/internal/httpjson"
	"github.com/nervehq/nerve/probes/flight"
)

func TestResolveThresholds(t *testing.T) {
	ms := time.Millisecond
	got := resolveThresholds(config.FlightThresholds{}, goals.Default())
	want := flightThresholds{BlockIOService: 30 * ms, BlockIOQueue: 50 * ms, RunQueue: 5 * ms, PageFault: 10 * ms, Safepoint: 100 * ms}
	if got != want {
		t.Errorf("from the built-in goals: %+v, want %+v (the exit levels)", got, want)
	}
	got = resolveThresholds(config.FlightThresholds{RunQueue: time.Microsecond, Safepoint: time.Second}, goals.Default())
	if got.RunQueue != time.Microsecond || got.Safepoint != time.Second || got.BlockIOService != 30*ms {
		t.Errorf("set thresholds not kept: %+v", got)
	}
}

// The goals file in force gives the thresholds left at 0.
func TestFlightThresholdsFromGoalsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "goals.yaml")
	os.WriteFile(file, []byte("disk:\n  service_idle_p99: {enter: 40ms, exit: 20ms}\n"), 0o644)
	cfg := config.Default()
	cfg.Actuator.GoalsFile = file
	f := newFlight(discard(), cfg)
	defer f.close()
	if f.thresholds.BlockIOService != 20*time.Millisecond {
		t.Errorf("blockio service threshold %v, want the goals file's exit level 20ms", f.thresholds.BlockIOService)
	}
	cfg.Flight.Enabled = false
	if off := newFlight(discard(), cfg); off.sink() != nil {
		t.Error("a recorder that is off gives the probes a sink")
	}
	var none *flightRun
	if none.sink() != nil || none.rate() != 0 {
		t.Error("a nil recorder gives the probes a sink")
	}
}

// testFlight is a recorder with a slow drive's outliers on sdb around t0,
// keeping its bundles in a temporary directory.
func testFlight(t *testing.T) (*flightRun, func(actuator.Diagnosis, string, time.Time) (string, error)) {
	t.Helper()
	cfg := config.Default()
	cfg.Flight.BundleLookback = time.Minute
	cfg.Flight.BundleMaxEvents = 5
	f := newFlight(slog.New(slog.DiscardHandler), cfg)
	t.Cleanup(f.close)
	now := time.Now()
	f.rec = flight.New(flight.Config{MaxEvents: 100, MaxAge: time.Hour, Now: func() time.Time { return now }})
	for i := range 20 {
		// One event every 10 s from 190 s ago until now.
		at := now.Add(time.Duration(i-19) * 10 * time.Second)
		f.rec.Record(flight.Event{Signal: flight.BlockIO, Time: at, PID: 4242, Comm: "dd", Latency: time.Duration(60+i) * time.Millisecond,
			Block: &flight.BlockEvent{Device: "sdb", Op: "read"}})
	}
	f.rec.Record(flight.Event{Signal: flight.RunQueue, Time: now, PID: 7, Comm: "java", Latency: 8 * time.Millisecond,
		RunQueue: &flight.RunQueueEvent{PrevPID: 9, PrevComm: "stress-ng"}})
	write, err := f.openBundles(filepath.Join(t.TempDir(), "incidents"))
	if err != nil || write == nil {
		t.Fatalf("openBundles: %v", err)
	}
	return f, write
}

func TestWriteBundle(t *testing.T) {
	f, write := testFlight(t)
	now := f.rec.Report(flight.Query{}).At
	d := actuator.Diagnosis{Kind: actuator.SlowDrive, Subject: "sdb", Since: now.Add(-60 * time.Second)}
	id := "20250304T050000.000-slow_drive-sdb"
	path, err := write(d, id, now.Add(-5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(f.bundleDir(), id+".json") {
		t.Errorf("bundle at %s", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b flight.Report
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("bundle does not parse: %v", err)
	}
	// The window: 60 s lookback before the diagnosis entered (120 s ago)
	// until the decision (5 s ago): the events 120, 110, ... 10 s ago.
	if b.Decision != id || b.Kind != "slow_drive" || b.Subject != "sdb" || !b.DiagnosedAt.Equal(d.Since) {
		t.Errorf("bundle header %+v", b)
	}
	if b.Matched != 12 || len(b.Events) != 5 || b.LeftOut != 7 {
		t.Errorf("matched %d, kept %d, left out %d; want 12 in the window, the 5 slowest kept", b.Matched, len(b.Events), b.LeftOut)
	}
	if !b.Filter.Since.Equal(now.Add(-120*time.Second)) || !b.Filter.Until.Equal(now.Add(-5*time.Second)) {
		t.Errorf("window %v to %v", b.Filter.Since, b.Filter.Until)
	}
	for _, e := range b.Events {
		if e.Block == nil || e.Block.Device != "sdb" || e.PID != 4242 || e.Comm != "dd" {
			t.Errorf("event %+v", e)
		}
	}
	if s, ok := b.Summary.Signal(flight.BlockIO); !ok || s.Count != 12 || s.Devices[0].Name != "sdb" {
		t.Errorf("summary %+v", b.Summary)
	}
	entries, _ := os.ReadDir(f.bundleDir())
	if len(entries) != 1 {
		t.Errorf("%d files in the bundle directory, want the bundle only (no temporary file)", len(entries))
	}
	if _, err := write(d, "../escape", now); err == nil {
		t.Error("a bundle id with a path in it was written")
	}
}

func TestPruneBundles(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("2025030%dT000000.000-x.json", i+1)), []byte("{}"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	if err := pruneBundles(dir, 2); err != nil {
		t.Fatal(err)
	}
	names, _ := bundleNames(dir)
	if strings.Join(names, ",") != "20250304T000000.000-x.json,20250305T000000.000-x.json" {
		t.Errorf("kept %v, want the two newest", names)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Error("a foreign file was removed")
	}
}

// openBundles removes what a crash in the middle of a write left.
func TestOpenBundlesRemovesTemps(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".x.json.tmp-123")
	os.WriteFile(tmp, []byte("{"), 0o644)
	f := newFlight(discard(), config.Default())
	defer f.close()
	if _, err := f.openBundles(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

func getJSON(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
	b, _ := io.ReadAll(rec.Body)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", url, ct)
	}
	return rec.Code, string(b)
}

func TestIncidentsAPI(t *testing.T) {
	f, write := testFlight(t)
	now := time.Now()
	for i, kind := range []actuator.Kind{actuator.SlowDrive, actuator.CPUOverload} {
		id := fmt.Sprintf("20250304T05000%d.000-%s", i, kind)
		if _, err := write(actuator.Diagnosis{Kind: kind, Subject: "node", Since: now.Add(-time.Minute)}, id, now); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	f.routes(mux)

	code, body := getJSON(t, mux, "/incidents")
	var list []flight.Incident
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("/incidents: %d %v\n%s", code, err, body)
	}
	if len(list) != 2 || list[0].Kind != "cpu_overload" || list[1].Kind != "slow_drive" {
		t.Fatalf("list %+v, want both, newest first", list)
	}
	if list[1].Counts[flight.BlockIO] == 0 || list[0].ID != "20250304T050001.000-cpu_overload" {
		t.Errorf("entry %+v", list[1])
	}
	if _, body := getJSON(t, mux, "/incidents?limit=1"); strings.Count(body, `"id"`) != 1 {
		t.Errorf("limit=1 listed %s", body)
	}

	code, body = getJSON(t, mux, "/incidents/"+list[1].ID)
	var b flight.Report
	if err := json.Unmarshal([]byte(body), &b); code != 200 || err != nil || b.Decision != list[1].ID || len(b.Events) == 0 {
		t.Errorf("/incidents/{id}: %d %v, decision %q with %d events", code, err, b.Decision, len(b.Events))
	}

	code, body = getJSON(t, mux, "/incidents/live?device=sdb&since=100s&limit=3")
	var live flight.Report
	if err := json.Unmarshal([]byte(body), &live); code != 200 || err != nil {
		t.Fatalf("/incidents/live: %d %v\n%s", code, err, body)
	}
	if live.Matched != 10 || len(live.Events) != 3 || live.Filter.Device != "sdb" {
		t.Errorf("live: matched %d, %d events, filter %+v; want the 10 events of the last 100 s, 3 kept", live.Matched, len(live.Events), live.Filter)
	}

	for _, tc := range []struct {
		url   string
		code  int
		param string
	}{
		{"/incidents?limit=0", 400, "limit"},
		{"/incidents?since=yesterday", 400, "since"},
		{"/incidents?bogus=1", 400, "bogus"},
		{"/incidents/live?pid=abc", 400, "pid"},
		{"/incidents/live?since=soon", 400, "since"},
		{"/incidents/live?until=1m&since=30s", 400, "until"},
		{"/incidents/live?device=..", 400, "device"},
		{"/incidents/live?signal=disk", 400, "signal"},
		{"/incidents/live?limit=-1", 400, "limit"},
		{"/incidents/live?%zz", 400, ""},
		{"/incidents/nope", 404, "id"},
		{"/incidents/..%2f..%2fetc%2fpasswd", 404, "id"},
		{"/incidents/.hidden", 404, "id"},
	} {
		code, body := getJSON(t, mux, tc.url)
		var e httpjson.Error
		if err := json.Unmarshal([]byte(body), &e); code != tc.code || err != nil || e.Parameter != tc.param || e.Error == "" {
			t.Errorf("%s: %d %s, want %d naming %q", tc.url, code, body, tc.code, tc.param)
		}
	}
}

// An agent without a recorder or an actuator answers, with nothing.
func TestIncidentsAPIOff(t *testing.T) {
	cfg := config.Default()
	cfg.Flight.Enabled = false
	for _, f := range []*flightRun{nil, newFlight(discard(), cfg)} {
		mux := http.NewServeMux()
		f.routes(mux)
		if code, body := getJSON(t, mux, "/incidents"); code != 200 || strings.TrimSpace(body) != "[]" {
			t.Errorf("/incidents: %d %s, want an empty list", code, body)
		}
		if code, body := getJSON(t, mux, "/incidents/live"); code != 503 || !strings.Contains(body, "flight.enabled") {
			t.Errorf("/incidents/live: %d %s, want 503 naming flight.enabled", code, body)
		}
		if code, _ := getJSON(t, mux, "/incidents/x"); code != 404 {
			t.Errorf("/incidents/x: %d, want 404", code)
		}
	}
}

// Whatever the query, /incidents and /incidents/live answer 200 or a 400
// naming a parameter, in JSON, and never panic.
func FuzzIncidentsQuery(f *testing.F) {
	for _, s := range []string{"", "since=10m", "pid=1&device=sda&signal=blockio&limit=3", "limit=0", "%zz", "since=1h&until=2h"} {
		f.Add(s)
	}
	cfg := config.Default()
	fl := newFlight(slog.New(slog.DiscardHandler), cfg)
	defer fl.close()
	fl.rec.Record(flight.Event{Signal: flight.BlockIO, PID: 1, Block: &flight.BlockEvent{Device: "sda"}})
	mux := http.NewServeMux()
	fl.routes(mux)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/incidents", "/incidents/live"} {
			req := httptest.NewRequest("GET", "/x", nil)
			req.URL.Path, req.URL.RawQuery = path, raw
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			var e httpjson.Error
			switch rec.Code {
			case 200:
			case 400:
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s?%s: 400 with %q", path, raw, rec.Body.String())
				}
			default:
				t.Fatalf("%s?%s: status %d", path, raw, rec.Code)
			}
		}
	})
}
