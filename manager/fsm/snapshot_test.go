package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/manager"
)

// gen makes random commands, often valid, sometimes stale or bad, over a
// few clusters, racks and nodes, with time moving forward by random steps.
type gen struct {
	r      *rand.Rand
	at     time.Duration
	grants []manager.Grant // every grant seen, to renew and release
	req    int
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) next() (manager.Op, time.Duration, any) {
	g.at += time.Duration(g.r.IntN(40)) * time.Second
	known := func() (string, uint64) {
		if len(g.grants) == 0 || g.r.IntN(10) == 0 {
			return fmt.Sprintf("g-%d", g.r.IntN(50)), uint64(g.r.IntN(50))
		}
		gr := g.grants[g.r.IntN(len(g.grants))]
		tok := gr.Token
		if g.r.IntN(8) == 0 {
			tok++ // stale
		}
		return gr.ID, tok
	}
	cluster := g.pick("c1", "c1", "c2")
	rack := g.pick("r1", "r2", "r3")
	node := g.pick(nodes...)
	switch n := g.r.IntN(100); {
	case n < 30:
		req := fmt.Sprint(g.req)
		if g.r.IntN(5) == 0 && g.req > 0 {
			req = fmt.Sprint(g.r.IntN(g.req)) // a retry, maybe
		} else {
			g.req++
		}
		return manager.OpAcquire, g.at, &manager.Acquire{Cluster: cluster, Rack: rack, Node: node, RequestID: req,
			Lease: time.Duration(g.r.IntN(120)) * time.Second}
	case n < 42:
		id, tok := known()
		return manager.OpRenew, g.at, &manager.Renew{GrantID: id, Token: tok, Lease: time.Duration(g.r.IntN(90)) * time.Second}
	case n < 54:
		id, tok := known()
		return manager.OpRelease, g.at, &manager.Release{GrantID: id, Token: tok}
	case n < 60:
		id, tok := known()
		return manager.OpCheckpoint, g.at, &manager.Checkpoint{GrantID: id, Token: tok, Step: g.pick("drain", "stop", "start")}
	case n < 70:
		return manager.OpExpire, g.at, nil
	case n < 76:
		return manager.OpHealthy, g.at, &manager.Healthy{Cluster: cluster, Node: node}
	case n < 80:
		id, _ := known()
		return manager.OpForceRelease, g.at, &manager.ForceRelease{GrantID: id, Reason: "random", By: "gen"}
	case n < 85:
		return manager.OpRackConfig, g.at, &manager.RackConfig{Cluster: cluster, Rack: rack, MaxHolders: g.r.IntN(4)}
	case n < 92:
		lv := manager.Levels[g.r.IntN(len(manager.Levels))]
		doc := g.pick("", "a: 1\n", "a: {b: 2, c: [1]}\n", "d: x\na: {c: 3}\n", "- not a map\n")
		return manager.OpSetGoals, g.at, &manager.SetGoals{Level: lv, Key: g.pick("c1", "prod", "eu", "z1", "r1", "n1"), Document: doc}
	case n < 98:
		return manager.OpReport, g.at, &manager.Report{Node: node, ID: fmt.Sprint(g.r.IntN(20)), Decision: []byte(`{"action":"none"}`)}
	default:
		return manager.OpAcquire, g.at, &manager.Acquire{Cluster: cluster} // bad
	}
}

// apply applies the next command and learns the grant it returned.
func (g *gen) apply(h *harness) (*Result, manager.Op, any) {
	op, at, body := g.next()
	r := h.apply(op, at, body)
	if r.Grant != nil {
		g.grants = append(g.grants, *r.Grant)
	}
	return r, op, body
}

func TestRandomCommandsKeepOneRackPerCluster(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHarness(t)
			h.f.maxReleased, h.f.maxEvents, h.f.maxReports = 20, 200, 5
			g := &gen{r: rand.New(rand.NewPCG(seed, 1))}
			var lastToken uint64
			grants, busy := 0, 0
			for i := range 2000 {
				r, op, body := g.apply(h)
				checkInvariants(t, h.f)
				if errors.Is(r.Err, manager.ErrRackBusy) {
					busy++
				}
				if op == manager.OpAcquire && r.Err == nil && r.Grant.Token > lastToken {
					grants++
					lastToken = r.Grant.Token
					// A new grant never takes its rack over its limit.
					a := body.(*manager.Acquire)
					n := 0
					for _, l := range h.f.Locks(a.Cluster) {
						if l.Rack == a.Rack {
							n++
						}
					}
					h.f.mu.RLock()
					max := h.f.s.maxHolders(a.Cluster, a.Rack)
					h.f.mu.RUnlock()
					if n > max {
						t.Fatalf("step %d: rack %s/%s has %d holders after a grant, max %d", i, a.Cluster, a.Rack, n, max)
					}
				}
			}
			if grants < 20 || busy < 20 {
				t.Fatalf("%d grants and %d busy refusals in 2000 commands: the generator does not exercise the locks", grants, busy)
			}
		})
	}
}

// TestSnapshotRestoreEqualsReplay: a replica restored from a snapshot at
// index k and then fed the rest of the log ends in the same state, with the
// same results, as one that applied the whole log.
func TestSnapshotRestoreEqualsReplay(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHarness(t)
			h.f.maxReleased, h.f.maxEvents, h.f.maxReports = 15, 300, 4
			g := &gen{r: rand.New(rand.NewPCG(seed, 2))}
			const n, k = 1500, 700
			for range k {
				g.apply(h)
			}
			snap := snapshotBytes(t, h.f)
			for range n - k {
				g.apply(h)
			}

			replay := New()
			replay.maxReleased, replay.maxEvents, replay.maxReports = 15, 300, 4
			results := map[uint64]*Result{}
			for _, l := range h.log {
				results[l.Index] = replay.Apply(l).(*Result)
			}
			sameState(t, h.f, replay)

			rest := New()
			rest.maxReleased, rest.maxEvents, rest.maxReports = 15, 300, 4
			rest.Apply(h.log[0]) // state that Restore must throw away
			if err := rest.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
				t.Fatal(err)
			}
			if got := rest.LastIndex(); got != k {
				t.Fatalf("restored LastIndex %d, want %d", got, k)
			}
			for _, l := range h.log[k:] {
				got := rest.Apply(l).(*Result)
				want := results[l.Index]
				if fmt.Sprint(got.Grant, got.Err, kinds(got.Events)) != fmt.Sprint(want.Grant, want.Err, kinds(want.Events)) {
					t.Fatalf("entry %d: restored replica gave %v %v %v, full replay %v %v %v",
						l.Index, got.Grant, got.Err, kinds(got.Events), want.Grant, want.Err, kinds(want.Events))
				}
			}
			sameState(t, h.f, rest)
		})
	}
}

func TestRestoreReplacesAllState(t *testing.T) {
	a := newHarness(t)
	a.apply(manager.OpAcquire, 0, acq("n1", "r1", "q"))
	snap := snapshotBytes(t, a.f)

	b := newHarness(t)
	b.apply(manager.OpRackConfig, 0, &manager.RackConfig{Cluster: "c1", Rack: "r2", MaxHolders: 3})
	b.apply(manager.OpSetGoals, 0, &manager.SetGoals{Level: manager.LevelCluster, Key: "c1", Document: "a: 1"})
	b.apply(manager.OpReport, 0, &manager.Report{Node: "n1", ID: "x"})
	b.apply(manager.OpAcquire, 0, acq("n2", "r2", "q"))
	b.apply(manager.OpAcquire, 0, acq("n3", "r2", "q"))
	if err := b.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	sameState(t, a.f, b.f)
	// The rack limit of b is gone too: r2 is back to one holder.
	b.apply(manager.OpRelease, 0, &manager.Release{GrantID: "g-1", Token: 1})
	b.apply(manager.OpAcquire, 0, acq("n2", "r2", "q2"))
	if r := b.apply(manager.OpAcquire, 0, acq("n3", "r2", "q2")); !errors.Is(r.Err, manager.ErrRackFull) {
		t.Fatalf("err = %v, want ErrRackFull (limit restored to default)", r.Err)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	h := newHarness(t)
	h.apply(manager.OpAcquire, 0, acq("n1", "r1", "q"))
	h.apply(manager.OpRelease, 0, &manager.Release{GrantID: "g-1", Token: 1})
	h.apply(manager.OpAcquire, 0, acq("n1", "r1", "q2"))
	good := string(snapshotBytes(t, h.f))
	tests := []struct {
		name, snap string
	}{
		{"empty", ""},
		{"garbage", "{{{"},
		{"wrong version", strings.Replace(good, `"version":1`, `"version":9`, 1)},
		{"token above max", strings.Replace(good, `"max_token":2`, `"max_token":1`, 1)},
		{"unknown state", strings.Replace(good, `"state":"held"`, `"state":"gone"`, 1)},
		{"released list wrong", strings.Replace(good, `"released":["g-1"]`, `"released":[]`, 1)},
		{"bad goals", strings.Replace(good, `"goals":[]`, `"goals":[{"level":"rack","key":"r","document":"- x"}]`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.snap == good {
				t.Fatal("the test did not change the snapshot")
			}
			f := New()
			f.Apply(h.log[0])
			before := snapshotBytes(t, f)
			if err := f.Restore(io.NopCloser(strings.NewReader(tt.snap))); err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			}
			if after := snapshotBytes(t, f); !bytes.Equal(before, after) {
				t.Fatal("a refused Restore changed the state")
			}
		})
	}
}

// TestConcurrentReads runs the reads against Apply and Snapshot; run it with
// -race.
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t)
	g := &gen{r: rand.New(rand.NewPCG(7, 7))}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() { // ends when done is closed
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				h.f.Locks("")
				h.f.Grant("g-1")
				h.f.Validate("g-1", 1)
				h.f.History(0, 10)
				h.f.Goals(wheres[1])
				h.f.Reports("n1", 0)
				h.f.LastIndex()
			}
		}()
	}
	for i := range 1000 {
		g.apply(h)
		if i%100 == 0 {
			snapshotBytes(t, h.f)
		}
	}
	close(done)
	wg.Wait()
}
