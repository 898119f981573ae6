package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nervehq/nerve/manager"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// harness applies commands to an FSM at increasing indexes and keeps the log
// so that it can be replayed.
type harness struct {
	tb  testing.TB
	f   *FSM
	log []*raft.Log
}

func newHarness(tb testing.TB) *harness { return &harness{tb: tb, f: New()} }

func entry(tb testing.TB, op manager.Op, at time.Time, body any) []byte {
	tb.Helper()
	c := manager.Command{Op: op, At: at}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		c.Body = b
	}
	b, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// applyRaw applies data at the next index.
func (h *harness) applyRaw(data []byte) *Result {
	h.tb.Helper()
	l := &raft.Log{Index: uint64(len(h.log) + 1), Term: 1, Type: raft.LogCommand, Data: data}
	h.log = append(h.log, l)
	r, ok := h.f.Apply(l).(*Result)
	if !ok || r == nil {
		h.tb.Fatalf("Apply returned %T, want *Result", h.f.Apply(l))
	}
	return r
}

// apply applies a command at t0+at.
func (h *harness) apply(op manager.Op, at time.Duration, body any) *Result {
	h.tb.Helper()
	return h.applyRaw(entry(h.tb, op, t0.Add(at), body))
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// snapshotBytes snapshots f and persists it.
func snapshotBytes(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		tb.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		tb.Fatalf("sink closed %v cancelled %v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// restored returns a new FSM restored from a snapshot of f.
func restored(tb testing.TB, f *FSM) *FSM {
	tb.Helper()
	g := New()
	g.maxEvents, g.maxReports, g.maxReleased = f.maxEvents, f.maxReports, f.maxReleased
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(tb, f)))); err != nil {
		tb.Fatal(err)
	}
	return g
}

var wheres = []manager.Where{
	{},
	{Cluster: "c1", Environment: "prod", Region: "eu", Zone: "eu-1a", Rack: "r1", Node: "n1"},
	{Cluster: "c1", Rack: "r2", Node: "n2"},
	{Cluster: "c2", Node: "n3"},
}

// sameState fails unless a and b read the same through every read.
func sameState(tb testing.TB, a, b *FSM) {
	tb.Helper()
	if x, y := a.LastIndex(), b.LastIndex(); x != y {
		tb.Fatalf("LastIndex %d != %d", x, y)
	}
	eq := func(what string, x, y any) {
		tb.Helper()
		xb, _ := json.Marshal(x)
		yb, _ := json.Marshal(y)
		if !bytes.Equal(xb, yb) {
			tb.Fatalf("%s differ:\n%s\n%s", what, xb, yb)
		}
	}
	eq("Locks", a.Locks(""), b.Locks(""))
	eq("History", a.History(0, 0), b.History(0, 0))
	for _, w := range wheres {
		ma, la, ea := a.Goals(w)
		mb, lb, eb := b.Goals(w)
		eq(fmt.Sprintf("Goals(%+v)", w), []any{ma, la, fmt.Sprint(ea)}, []any{mb, lb, fmt.Sprint(eb)})
	}
	for _, n := range nodes {
		eq("Reports "+n, a.Reports(n, 0), b.Reports(n, 0))
	}
	// The snapshots themselves, which hold everything (tokens, released
	// grants, rack limits), are byte for byte equal.
	if x, y := snapshotBytes(tb, a), snapshotBytes(tb, b); !bytes.Equal(x, y) {
		tb.Fatalf("snapshots differ:\n%s\n%s", x, y)
	}
}

var nodes = []string{"n1", "n2", "n3", "n4", "n5", "n6"}

// checkInvariants fails if two racks of a cluster hold, tokens are not
// unique and at most maxToken, or grants and the active set disagree.
func checkInvariants(tb testing.TB, f *FSM) {
	tb.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	rackOf := map[string]string{}
	for _, g := range s.activeSorted() {
		if g.State != manager.Held && g.State != manager.Suspect {
			tb.Fatalf("active grant %s in state %s", g.ID, g.State)
		}
		if r, ok := rackOf[g.Cluster]; ok && r != g.Rack {
			tb.Fatalf("cluster %s: racks %s and %s both hold", g.Cluster, r, g.Rack)
		}
		rackOf[g.Cluster] = g.Rack
	}
	tokens := map[uint64]bool{}
	for _, g := range s.grants {
		if g.Token == 0 || g.Token > s.maxToken || tokens[g.Token] {
			tb.Fatalf("grant %s: token %d (max %d) bad or reused", g.ID, g.Token, s.maxToken)
		}
		tokens[g.Token] = true
		if (g.State == manager.Released) == (s.active[g.ID] != nil) {
			tb.Fatalf("grant %s: state %s, active %v", g.ID, g.State, s.active[g.ID] != nil)
		}
	}
	for i := 1; i < len(s.events); i++ {
		if s.events[i].Index < s.events[i-1].Index {
			tb.Fatalf("events out of order at %d", i)
		}
	}
}

func kinds(es []manager.Event) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

func wantErr(tb testing.TB, got, want error) {
	tb.Helper()
	switch {
	case want == nil && got != nil:
		tb.Fatalf("err = %v, want nil", got)
	case want != nil && !errors.Is(got, want):
		tb.Fatalf("err = %v, want %v", got, want)
	}
}
