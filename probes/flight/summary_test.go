package flight

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// incident is a slow drive sdb under dd and cassandra, with a CPU hog, a
// page fault on an SSTable and a long safepoint.
func incident() []Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var es []Event
	for i := range 100 {
		es = append(es, Event{Signal: BlockIO, Time: at(i), PID: 4242, Comm: "dd", Cgroup: "/user.slice",
			Latency: ms(60 + i%5), Block: &BlockEvent{Device: "sdb", Op: "read", Service: ms(60 + i%5), Bytes: 4096}})
	}
	es = append(es,
		Event{Signal: BlockIO, Time: at(5), PID: 1000, Comm: "CompactionExec", Cgroup: "/system.slice/cassandra.service",
			Latency: ms(900), Block: &BlockEvent{Device: "sdb", Op: "write", Service: ms(880), Queue: ms(20), Inflight: 3}},
		Event{Signal: BlockIO, Time: at(6), PID: 1000, Comm: "ReadStage-1", Latency: ms(40), Block: &BlockEvent{Device: "sda", Op: "read"}},
		Event{Signal: RunQueue, Time: at(7), PID: 1000, TID: 1010, Comm: "ReadStage-1", Latency: ms(12),
			RunQueue: &RunQueueEvent{CPU: 1, PrevPID: 666, PrevTID: 666, PrevComm: "stress-ng"}},
		Event{Signal: RunQueue, Time: at(8), PID: 1000, TID: 1011, Comm: "ReadStage-2", Latency: ms(9),
			RunQueue: &RunQueueEvent{CPU: 0, PrevPID: 666, PrevTID: 667, PrevComm: "stress-ng"}},
		Event{Signal: PageFault, Time: at(9), PID: 1000, Comm: "ReadStage-1", Latency: ms(25),
			PageFault: &PageFaultEvent{Address: 0x7f0000001000, File: "/var/lib/cassandra/data/ks/t/nb-1-big-Data.db", Offset: 4096}},
		Event{Signal: Safepoint, Time: at(10), PID: 1000, Comm: "java", Latency: ms(450),
			Safepoint: &SafepointEvent{JVM: "cassandra", VMOperation: "G1CollectFull", Pause: ms(450), TimeToSafepoint: ms(3)}},
	)
	return es
}

func TestSummarise(t *testing.T) {
	s := Summarise(incident())
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.json", append(got, '\n'))

	b, ok := s.Signal(BlockIO)
	if !ok {
		t.Fatal("no blockio summary")
	}
	// 101 block events on sdb+sda; 102 in all. Nearest-rank p99 of 102 is
	// the 101st smallest: the largest dd read (64ms).
	if b.Count != 102 || b.Max != ms(900) || b.P99 != ms(64) {
		t.Errorf("blockio count %d max %v p99 %v, want 102, 900ms, 64ms", b.Count, b.Max, b.P99)
	}
	if p := b.ProcessesByCount[0]; p.PID != 4242 || p.Comm != "dd" || p.Count != 100 || p.Cgroup != "/user.slice" {
		t.Errorf("top process by count %+v, want dd (4242) with 100", p)
	}
	if p := b.ProcessesByLatency[0]; p.PID != 4242 || p.Total != 100*ms(62) {
		t.Errorf("top process by latency %+v, want dd with 6.2s", p)
	}
	if d := b.Devices[0]; d.Name != "sdb" || d.Count != 101 {
		t.Errorf("top device %+v, want sdb with 101", d)
	}
	rq, _ := s.Signal(RunQueue)
	if len(rq.RanInstead) != 1 || rq.RanInstead[0].Comm != "stress-ng" || rq.RanInstead[0].Total != ms(21) {
		t.Errorf("ran instead %+v, want stress-ng with 21ms", rq.RanInstead)
	}
	pf, _ := s.Signal(PageFault)
	if len(pf.Files) != 1 || !strings.HasSuffix(pf.Files[0].Name, "nb-1-big-Data.db") {
		t.Errorf("files %+v, want the SSTable", pf.Files)
	}
	sp, _ := s.Signal(Safepoint)
	if len(sp.VMOperations) != 1 || sp.VMOperations[0].Name != "G1CollectFull" {
		t.Errorf("vm operations %+v, want G1CollectFull", sp.VMOperations)
	}
}

func TestSummariseTopN(t *testing.T) {
	var es []Event
	for i := range 3 * TopN {
		es = append(es, Event{Signal: BlockIO, PID: i + 1, Latency: ms(i + 1), Block: &BlockEvent{Device: "d" + string(rune('a'+i))}})
	}
	b, _ := Summarise(es).Signal(BlockIO)
	if len(b.ProcessesByLatency) != TopN || len(b.Devices) != TopN || b.ProcessesByLatency[0].PID != 3*TopN {
		t.Errorf("%d processes (first %+v), %d devices; want %d each, the slowest first", len(b.ProcessesByLatency), b.ProcessesByLatency[0], len(b.Devices), TopN)
	}
	if s := Summarise(nil); len(s.Signals) != 0 {
		t.Errorf("summary of nothing: %+v", s)
	}
}

func TestP99NearestRank(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {100, 99}, {101, 100}, {1000, 990}} {
		var es []Event
		for i := range tc.n {
			es = append(es, Event{Signal: RunQueue, Latency: ms(i + 1)})
		}
		if got, _ := Summarise(es).Signal(RunQueue); got.P99 != ms(tc.want) {
			t.Errorf("p99 of 1..%d ms = %v, want %v", tc.n, got.P99, ms(tc.want))
		}
	}
}

func TestSlowest(t *testing.T) {
	es := incident()
	kept, left := Slowest(es, 3)
	// 3 of 102 block events, the single ones of the other signals kept.
	if left != 99 || len(kept) != 3+2+1+1 {
		t.Fatalf("kept %d, left %d; want 7 and 99", len(kept), left)
	}
	var block []time.Duration
	for i, e := range kept {
		if i > 0 && e.Time.Before(kept[i-1].Time) {
			t.Errorf("event %d out of time order", i)
		}
		if e.Signal == BlockIO {
			block = append(block, e.Latency)
		}
	}
	var sum time.Duration
	for _, l := range block {
		sum += l
	}
	if sum != ms(900)+ms(64)+ms(64) {
		t.Errorf("block events kept %v, want the three slowest (900ms, 64ms, 64ms)", block)
	}
	if all, left := Slowest(es, 0); len(all) != len(es) || left != 0 {
		t.Errorf("limit 0 kept %d of %d", len(all), len(es))
	}
}

func TestReport(t *testing.T) {
	c := &clock{now: t0.Add(5 * time.Minute)}
	r := New(Config{Now: c.Now})
	for _, e := range incident() {
		r.Record(e)
	}
	rep := r.Report(Query{Filter: Filter{Device: "sdb"}, Limit: 10})
	if rep.Matched != 101 || len(rep.Events) != 10 || rep.LeftOut != 91 || !rep.At.Equal(c.Now()) {
		t.Errorf("matched %d, %d events, left out %d, at %v", rep.Matched, len(rep.Events), rep.LeftOut, rep.At)
	}
	if len(rep.Summary.Signals) != 1 || rep.Summary.Signals[0].Count != 101 {
		t.Errorf("summary %+v, want the 101 sdb events", rep.Summary)
	}
	if rep.Recorder.Counts[BlockIO].Held != 102 || rep.Recorder.MaxEvents != DefaultMaxEvents {
		t.Errorf("recorder state %+v", rep.Recorder)
	}
	empty := r.Report(Query{Filter: Filter{PID: 1}})
	if b, _ := json.Marshal(empty); !strings.Contains(string(b), `"events":[]`) || !strings.Contains(string(b), `"signals":[]`) {
		t.Errorf("empty report %s: want empty lists, not null", b)
	}
	inc := Report{Decision: "x", Summary: rep.Summary}.Incident()
	if inc.ID != "x" || inc.Counts[BlockIO] != 101 {
		t.Errorf("incident %+v", inc)
	}
}

func TestCollector(t *testing.T) {
	r := New(Config{MaxEvents: 2})
	for i := range 5 {
		r.Record(Event{Signal: BlockIO, PID: i})
	}
	r.Record(Event{Signal: Safepoint})
	r.AddSource(BlockIO, func() Drops { return Drops{RateLimited: 7, Lost: 1} })
	f, err := os.Open(filepath.Join("testdata", "flight.metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r)
	if err := testutil.GatherAndCompare(reg, f); err != nil {
		t.Error(err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n%s", path, got)
	}
}

func TestText(t *testing.T) {
	c := &clock{now: t0.Add(5 * time.Minute)}
	r := New(Config{MaxEvents: 100, Now: c.Now})
	for _, e := range incident() {
		r.Record(e)
	}
	r.AddSource(RunQueue, func() Drops { return Drops{RateLimited: 12} })
	rep := r.Report(Query{Filter: Filter{Since: t0}, Limit: 50})
	rep.Decision, rep.Kind, rep.Subject, rep.DiagnosedAt = "20250304T050500.000-slow_drive-sdb", "slow_drive", "sdb", t0.Add(time.Minute)
	golden(t, "report.txt", []byte(Text(rep, 5)))
}
