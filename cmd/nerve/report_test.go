package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/probes/flight"
)

// fakeAgent serves /incidents and /decisions as the agent does, from a real
// recorder holding a slow read on loop3 by dd, a page-fault stall on an
// SSTable, and a bundle and decision with id "d1".
func fakeAgent(t *testing.T) *httptest.Server {
	t.Helper()
	now := time.Now()
	rec := flight.New(flight.Config{})
	for i := range 30 {
		rec.Record(flight.Event{Signal: flight.BlockIO, Time: now.Add(-time.Duration(5+10*i) * time.Second), PID: 4242, Comm: "dd",
			Latency: time.Duration(60+i) * time.Millisecond, Block: &flight.BlockEvent{Device: "loop3", Op: "read", Bytes: 4096, Service: 60 * time.Millisecond}})
	}
	rec.Record(flight.Event{Signal: flight.PageFault, Time: now, PID: 77, Comm: "java", Latency: 25 * time.Millisecond,
		PageFault: &flight.PageFaultEvent{File: "/data/nb-1-big-Data.db", Offset: 8192}})
	bundle := rec.Report(flight.Query{Filter: flight.Filter{Since: now.Add(-time.Minute)}})
	bundle.Decision, bundle.Kind, bundle.Subject = "d1", "slow_drive", "loop3"

	mux := http.NewServeMux()
	mux.HandleFunc("GET /incidents/live", func(w http.ResponseWriter, r *http.Request) {
		q, err := flight.ParseQuery(r.URL.Query(), time.Now())
		if err != nil {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error": %q}`, err)
			return
		}
		json.NewEncoder(w).Encode(rec.Report(q))
	})
	mux.HandleFunc("GET /incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "d1" {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error": "incident \"nope\": no such bundle", "parameter": "id"}`)
			return
		}
		json.NewEncoder(w).Encode(bundle)
	})
	mux.HandleFunc("GET /decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id": %q, "outcome": "advised"}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		if _, err := time.Parse(time.RFC3339, r.URL.Query().Get("since")); err != nil {
			t.Errorf("/decisions since %q", r.URL.Query().Get("since"))
		}
		fmt.Fprint(w, `[{"id": "d1", "outcome": "advised"}, {"id": "d0", "outcome": "done"}]`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestReportText(t *testing.T) {
	srv := fakeAgent(t)
	var stdout, stderr strings.Builder
	code := run([]string{"report", "--agent.address=" + srv.URL, "--since=2m", "--top=3"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"outliers from ", "(2m0s)",
		"== blockio: 12 outliers", // the reads of the last 2 minutes: 5, 15, ..., 115 s ago
		"pid 4242  dd", "loop3", "12 outliers",
		"== pagefault: 1 outliers", "/data/nb-1-big-Data.db",
		"slowest outliers (3 of 13):", "71ms", "service 60ms, queue 0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestReportJSONFilters(t *testing.T) {
	srv := fakeAgent(t)
	var stdout, stderr strings.Builder
	code := run([]string{"report", "--agent.address=" + srv.URL, "--json", "--device=loop3", "--pid=4242", "--since=10m", "--limit=5"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r flight.Report
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("--json output does not parse: %v", err)
	}
	if r.Filter.Device != "loop3" || r.Filter.PID != 4242 || r.Matched != 30 || len(r.Events) != 5 || r.LeftOut != 25 {
		t.Errorf("filter %+v, matched %d, %d events, left out %d; want the 30 reads, the 5 slowest", r.Filter, r.Matched, len(r.Events), r.LeftOut)
	}
	for _, e := range r.Events {
		if e.PID != 4242 || e.Comm != "dd" || e.Block == nil || e.Block.Device != "loop3" || e.Latency < 85*time.Millisecond {
			t.Errorf("event %+v", e)
		}
	}
}

func TestReportBundleArchive(t *testing.T) {
	srv := fakeAgent(t)
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	var stdout, stderr strings.Builder
	code := run([]string{"report", "--agent.address=" + srv.URL, "--id=d1", "--out=" + out}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote "+out) || !strings.Contains(stdout.String(), "1 decisions") {
		t.Errorf("stdout %q", stdout.String())
	}
	files := readArchive(t, out)
	var head flight.Report
	if err := json.Unmarshal(files["summary.json"], &head); err != nil || head.Decision != "d1" || len(head.Events) != 0 {
		t.Errorf("summary.json: %v, decision %q, %d events (want none: they are in events.json)", err, head.Decision, len(head.Events))
	}
	var events []flight.Event
	if err := json.Unmarshal(files["events.json"], &events); err != nil || len(events) != head.Matched || len(events) == 0 {
		t.Errorf("events.json: %v, %d events, want %d", err, len(events), head.Matched)
	}
	var decisions []struct{ ID string }
	if err := json.Unmarshal(files["decisions.json"], &decisions); err != nil || len(decisions) != 1 || decisions[0].ID != "d1" {
		t.Errorf("decisions.json: %v %+v, want decision d1", err, decisions)
	}
	if !strings.Contains(string(files["report.txt"]), "incident d1: slow_drive on loop3") {
		t.Errorf("report.txt:\n%s", files["report.txt"])
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A live archive holds the decisions of its window.
	code = run([]string{"report", "--agent.address=" + srv.URL, "--out=" + out}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if files := readArchive(t, out); !strings.Contains(string(files["decisions.json"]), `"d0"`) {
		t.Errorf("live decisions.json: %s", files["decisions.json"])
	}
}

func readArchive(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	for _, name := range []string{"summary.json", "events.json", "decisions.json", "report.txt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("archive lacks %s", name)
		}
	}
	return files
}

func TestReportErrors(t *testing.T) {
	srv := fakeAgent(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--since=yesterday"}, exitUsage, "--since"},
		{[]string{"--pid=0"}, exitUsage, "--pid"},
		{[]string{"--device=a/b"}, exitUsage, "--device"},
		{[]string{"--signal=disk"}, exitUsage, "enum value must be one of"},
		{[]string{"--limit=0"}, exitUsage, "--limit"},
		{[]string{"--since=1m", "--until=5m"}, exitUsage, "--until"},
		{[]string{"--top=-1"}, exitUsage, "--top"},
		{[]string{"--id=d1", "--pid=3"}, exitUsage, "--id"},
		{[]string{"--id=nope"}, exitFailure, "no such incident"},
		{[]string{"--agent.address=" + deadURL}, exitFailure, "ask the agent"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"report"}, tc.args...)
			if !strings.HasPrefix(tc.args[0], "--agent.address") {
				args = append(args, "--agent.address="+srv.URL)
			}
			var stdout, stderr strings.Builder
			if code := run(args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
