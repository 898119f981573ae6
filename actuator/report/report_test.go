package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
	"github.com/nervehq/nerve/internal/httpjson"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var t0 = time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)

// sample is a decision made by a real ladder: a slow drive, rung 4 chosen
// in enforce mode and carried out under rack-lock token 42.
func sample(t *testing.T, id string, at time.Time) Decision {
	t.Helper()
	l, err := ladder.New(ladder.Config{Modes: map[actuator.Rung]actuator.Mode{3: actuator.Enforce, 4: actuator.Enforce, 5: actuator.Advise}}, []ladder.ActionInfo{
		{Name: "throttle-compaction", Rung: actuator.LiveControl, Clears: []actuator.Kind{actuator.DiskOverload}, Available: true},
		{Name: "restart-cassandra", Rung: actuator.RestartDatabase, Clears: []actuator.Kind{actuator.QueryOfDeath}, Available: true},
		{Name: "transfer-and-exit", Rung: actuator.TransferAndExit, Clears: []actuator.Kind{actuator.SlowDrive}, Available: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := actuator.Diagnosis{
		Kind: actuator.SlowDrive, Subject: "sdb", Since: at.Add(-12 * time.Minute),
		Evidence: []actuator.Evidence{
			{Signal: "disk.service_idle_p99{device=sdb}", Value: 0.045, Unit: "seconds", Threshold: 0.02, For: 12 * time.Minute},
			{Signal: "disk.service_idle_n{device=sdb}", Value: 1830, Unit: "requests", Threshold: 100, For: 12 * time.Minute},
		},
		Context: map[string]float64{"cpu.busy": 0.31, "psi.io.some": 0.12},
	}
	p, err := l.Decide(d, at)
	if err != nil {
		t.Fatal(err)
	}
	return Decision{
		ID: id, At: at, Plan: p, Context: d.Context, LockToken: 42,
		Steps: []journal.StepRecord{
			{Name: "acquire-lock", State: journal.Done, Runs: 1, Started: at, Ended: at.Add(200 * time.Millisecond)},
			{Name: "decommission", State: journal.Done, Runs: 2, Started: at.Add(time.Second), Ended: at.Add(41 * time.Minute)},
			{Name: "stop-cassandra", State: journal.Failed, Runs: 1, Started: at.Add(41 * time.Minute), Ended: at.Add(42 * time.Minute), Error: "systemctl stop: timeout"},
		},
		Outcome: "failed: step stop-cassandra: systemctl stop: timeout",
	}
}

func TestTextGolden(t *testing.T) {
	got := Text(sample(t, "d-1", t0))
	golden := filepath.Join("testdata", "decision.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Text() =\n%s\nwant (%s; -update to rewrite):\n%s", got, golden, want)
	}
}

func openStore(t *testing.T, dir string, keep int) (*Store, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := Open(dir, keep, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func TestJSONRoundTrip(t *testing.T) {
	s, _ := openStore(t, t.TempDir(), 0)
	want := sample(t, "d-1", t0)
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("d-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get() =\n%+v\nwant\n%+v", got, want)
	}
	// Saving again under the same id replaces it, even at another time.
	want.At, want.Outcome = t0.Add(time.Hour), "done"
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(time.Time{}, 0)
	if err != nil || len(all) != 1 || all[0].Outcome != "done" {
		t.Errorf("List() = %d decisions, %v; want the one replaced", len(all), err)
	}
}

func TestStoreBoundAndList(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, 3)
	for i := range 5 {
		if err := s.Save(sample(t, fmt.Sprintf("d-%d", i), t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files, want 3", len(entries))
	}
	tests := []struct {
		since time.Time
		limit int
		want  []string
	}{
		{time.Time{}, 0, []string{"d-4", "d-3", "d-2"}},
		{time.Time{}, 2, []string{"d-4", "d-3"}},
		{t0.Add(3 * time.Minute), 0, []string{"d-4", "d-3"}},
		{t0.Add(time.Hour), 0, nil},
	}
	for _, tt := range tests {
		ds, err := s.List(tt.since, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("List(%s, %d) = %v, want %v", tt.since, tt.limit, got, tt.want)
		}
	}
}

// A Save killed before its rename leaves a temporary file and the old
// decision: the store ignores the leftover, and Open removes it.
func TestLeftoverTempIgnored(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, 0)
	if err := s.Save(sample(t, "d-1", t0)); err != nil {
		t.Fatal(err)
	}
	name := fileName(Decision{ID: "d-1", At: t0})
	tmp := filepath.Join(dir, "."+name+".tmp-4242")
	if err := os.WriteFile(tmp, []byte(`{"id":"d-1","outcome":"do`), 0o600); err != nil {
		t.Fatal(err)
	}
	ds, err := s.List(time.Time{}, 0)
	if err != nil || len(ds) != 1 || ds[0].Outcome == "" {
		t.Fatalf("List() = %+v, %v; want the intact decision", ds, err)
	}
	s, logs := openStore(t, dir, 0)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary file still there after Open: %v", err)
	}
	if _, err := s.Get("d-1"); err != nil {
		t.Errorf("Get after Open: %v", err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged %q, want nothing", logs)
	}
}

func TestCorruptFileSkipped(t *testing.T) {
	dir := t.TempDir()
	s, logs := openStore(t, dir, 0)
	if err := s.Save(sample(t, "d-1", t0)); err != nil {
		t.Fatal(err)
	}
	bad := fileName(Decision{ID: "d-2", At: t0.Add(time.Minute)})
	if err := os.WriteFile(filepath.Join(dir, bad), []byte(`{"id":"d-2","at":`), 0o600); err != nil {
		t.Fatal(err)
	}
	ds, err := s.List(time.Time{}, 0)
	if err != nil || len(ds) != 1 || ds[0].ID != "d-1" {
		t.Errorf("List() = %+v, %v; want d-1 alone", ds, err)
	}
	if !strings.Contains(logs.String(), bad) {
		t.Errorf("log %q does not name %s", logs, bad)
	}
}

func TestHandler(t *testing.T) {
	s, _ := openStore(t, t.TempDir(), 0)
	for i := range 3 {
		if err := s.Save(sample(t, fmt.Sprintf("d-%d", i), t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(s))
	defer srv.Close()
	tests := []struct {
		path      string
		code      int
		wantIDs   []string // for lists
		wantParam string   // for errors
	}{
		{"/decisions", 200, []string{"d-2", "d-1", "d-0"}, ""},
		{"/decisions?limit=1", 200, []string{"d-2"}, ""},
		{"/decisions?since=2025-03-04T05:01:00Z", 200, []string{"d-2", "d-1"}, ""},
		{"/decisions?since=2030-01-01T00:00:00Z", 200, []string{}, ""},
		{"/decisions?since=yesterday", 400, nil, "since"},
		{"/decisions?limit=0", 400, nil, "limit"},
		{"/decisions?limit=many", 400, nil, "limit"},
		{"/decisions?limit=1001", 400, nil, "limit"},
		{"/decisions/d-1", 200, []string{"d-1"}, ""},
		{"/decisions/nope", 404, nil, "id"},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s, want %d application/json\n%s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.code, body)
			continue
		}
		switch {
		case tt.code != 200:
			var e httpjson.Error
			if err := json.Unmarshal(body.Bytes(), &e); err != nil || e.Parameter != tt.wantParam || e.Error == "" {
				t.Errorf("GET %s: error body %s, want one naming %q", tt.path, body, tt.wantParam)
			}
		case strings.HasPrefix(tt.path, "/decisions/"):
			var d Decision
			if err := json.Unmarshal(body.Bytes(), &d); err != nil || d.ID != tt.wantIDs[0] || d.LockToken != 42 {
				t.Errorf("GET %s: %s, want decision %s", tt.path, body, tt.wantIDs[0])
			}
		default:
			var ds []Decision
			if err := json.Unmarshal(body.Bytes(), &ds); err != nil {
				t.Fatalf("GET %s: %v\n%s", tt.path, err, body)
			}
			got := []string{}
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("GET %s: ids %v, want %v", tt.path, got, tt.wantIDs)
			}
		}
	}
	resp, err := http.Post(srv.URL+"/decisions", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /decisions: %d, want 405", resp.StatusCode)
	}
}
