package manager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
	"github.com/nervehq/nerve/manager/fsm"
	"github.com/nervehq/nerve/test/manager/cluster"
)

// EnvDuration sets how long the agents and the nemesis run (default 60s).
const EnvDuration = "NERVE_MANAGER_TEST_DURATION"

// EnvBinary names a nerve binary to test instead of building ./cmd/nerve.
const EnvBinary = "NERVE_MANAGER_TEST_BINARY"

const (
	testCluster = "cass-1"
	testToken   = "jepsen-token"
	// grantLease is short enough that the nemesis's pauses and partitions
	// outlast it, so leases lapse and grants turn suspect under load.
	grantLease = 3 * time.Second
	// pauseFor is how long a replica stays SIGSTOPped: longer than the
	// grant lease and than raft's leader lease and election timeout.
	pauseFor = 4 * time.Second
)

// agentSpec is one node of the fleet.
type agentSpec struct{ node, rack string }

// The fleet: three racks, two of them with two nodes. Both nodes of
// rack-a may hold its lock together (max holders 2); rack-c keeps the
// default of one, so its nodes also meet rack_full.
var fleet = []agentSpec{
	{"a1", "rack-a"}, {"a2", "rack-a"},
	{"b1", "rack-b"},
	{"c1", "rack-c"}, {"c2", "rack-c"},
}

// rackLimits are the max holders set with PUT /v1/racks; other racks have 1.
var rackLimits = map[string]int{"rack-a": 2}

func rackLimit(rack string) int { return max(1, rackLimits[rack]) }

// TestManagerJepsen runs a three-replica manager cluster of real processes,
// each in a network namespace of its own, while agents of three racks take
// the rack lock in turn and a nemesis kills, pauses and partitions the
// replicas. Then it heals the cluster and checks what the agents saw and
// what every replica recorded: one rack at a time, fencing tokens rising
// with the log, no acknowledged grant lost, a linearizable lock, and
// replicas that agree.
func TestManagerJepsen(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "go")
	duration := 60 * time.Second
	if s := os.Getenv(EnvDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvDuration, s, err)
		}
		duration = d
	}

	dir := t.TempDir()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		bin = filepath.Join(dir, "nerve")
		build := exec.Command("go", "build", "-o", bin, "github.com/nervehq/nerve/cmd/nerve")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/nerve: %v\n%s", err, out)
		}
	}

	c, err := cluster.Start(cluster.Options{Binary: bin, Dir: dir, Netns: true, Token: testToken})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.Replicas {
				t.Logf("replica %s log (%s), last lines:\n%s", r.ID, r.LogPath, r.Tail(40))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("remove the test network: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), duration+3*time.Minute)
	defer cancel()
	first, err := c.WaitLeader(withTimeout(ctx, 30*time.Second))
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Logf("replicas %v, first leader %s", c.Endpoints(), first.ID)
	for rack, n := range rackLimits {
		if err := setRackLimit(withTimeout(ctx, 30*time.Second), c.Endpoints(), rack, n); err != nil {
			t.Fatalf("set max holders of %s: %v", rack, err)
		}
	}

	rec := newRecorder()
	runCtx, stopRun := context.WithTimeout(ctx, duration)
	defer stopRun()
	// Agents finish the cycle they are in after runCtx ends, against the
	// healed cluster; finishCtx bounds that.
	finishCtx, stopFinish := context.WithTimeout(ctx, duration+time.Minute)
	defer stopFinish()

	mon := &leaderMonitor{}
	var wg sync.WaitGroup
	wg.Go(func() { mon.run(runCtx, c) })
	nem := &nemesis{c: c, logf: t.Logf, rec: rec}
	wg.Go(func() { nem.run(runCtx) })
	var agents sync.WaitGroup
	for i, a := range fleet {
		cl, err := client.New(c.Endpoints(), testToken, client.WithRequestTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		agents.Go(func() { runAgent(runCtx, finishCtx, i, a, cl, rec) })
	}
	wg.Wait() // the nemesis has healed everything when it returns
	if err := c.Heal(); err != nil {
		t.Errorf("heal: %v", err)
	}
	agents.Wait()

	// Convergence: every replica reaches the leader's applied index, and
	// their histories up to it are the same.
	leader, err := c.WaitLeader(withTimeout(ctx, 30*time.Second))
	if err != nil {
		t.Fatalf("after healing: %v", err)
	}
	st, err := leader.Status(ctx)
	if err != nil {
		t.Fatalf("leader status: %v", err)
	}
	upTo := st.AppliedIndex
	var histories [][]manager.Event
	for _, r := range c.Replicas {
		applied, err := waitApplied(withTimeout(ctx, 30*time.Second), r, upTo)
		if err != nil {
			t.Errorf("replica %s did not catch up to index %d: %v", r.ID, upTo, err)
			continue
		}
		evs, err := fetchHistory(ctx, r)
		if err != nil {
			t.Errorf("history of %s: %v", r.ID, err)
			continue
		}
		t.Logf("replica %s: applied index %d, %d events", r.ID, applied, len(evs))
		histories = append(histories, until(evs, upTo))
	}
	if len(histories) != len(c.Replicas) {
		t.FailNow()
	}
	for i := 1; i < len(histories); i++ {
		if d := diffHistories(histories[0], histories[i]); d != "" {
			t.Errorf("replicas %s and %s differ up to index %d: %s", c.Replicas[0].ID, c.Replicas[i].ID, upTo, d)
		}
	}
	events := histories[0]
	if len(events) >= fsm.MaxEvents {
		t.Logf("the history is at its bound of %d events: grants before index %d are not checked against it", fsm.MaxEvents, events[0].Index)
	}

	grants, releases, left, refuseEvents, errs := checkEvents(events)
	for _, e := range errs {
		t.Errorf("manager history: %s", e)
	}
	// Every agent released what it was granted before it stopped: a grant
	// still held is one no agent knew of, and it locks the cluster.
	for _, g := range left {
		t.Errorf("grant %s (token %d) to %s/%s, request %s, is still %s after every agent finished",
			g.ID, g.Token, g.Rack, g.Node, g.RequestID, g.State)
	}
	firstToken := uint64(0)
	for _, e := range events {
		if e.Kind == "grant" {
			firstToken = e.Grant.Token
			break
		}
	}
	rec.mu.Lock()
	ops, stops := rec.ops, rec.stops
	rec.mu.Unlock()
	var sum summary
	for _, op := range ops {
		sum.count(op)
		if op.in.Kind == opAcquire && op.out.Result == resOK {
			g, ok := grants[op.out.Grant]
			switch {
			case op.out.Token < firstToken && len(events) >= fsm.MaxEvents:
			case !ok:
				t.Errorf("acknowledged grant %s (token %d) to %s, request %s, is not in the history", op.out.Grant, op.out.Token, op.in.Node, op.in.Req)
			case g.Token != op.out.Token || g.Node != op.in.Node || g.RequestID != op.in.Req:
				t.Errorf("acknowledged grant %s token %d to %s request %s; the history has token %d to %s request %s",
					op.out.Grant, op.out.Token, op.in.Node, op.in.Req, g.Token, g.Node, g.RequestID)
			}
		}
		if op.in.Kind == opRelease && op.out.Result == resOK && !releases[op.in.Grant] && op.in.Token >= firstToken {
			t.Errorf("acknowledged release of %s (token %d) by %s is not in the history", op.in.Grant, op.in.Token, op.in.Node)
		}
	}
	for _, e := range checkStops(stops) {
		t.Errorf("two racks down at once: %s", e)
	}

	hist, unresolved := history(ops, events)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(lockModel, hist, 2*time.Minute)
	t.Logf("porcupine: %s over %d operations (%d settled from the manager's history) in %s",
		res, len(hist), unresolved, time.Since(start).Round(time.Millisecond))
	if res != porcupine.Ok {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("nerve-manager-jepsen-%d.html", os.Getpid()))
		if err := porcupine.VisualizePath(lockModel, info, out); err == nil {
			t.Logf("linearizability visualization: %s", out)
		}
		if res == porcupine.Unknown {
			t.Errorf("porcupine could not decide within its 2-minute limit whether the lock history is linearizable (not a proven violation; the history is above)")
		} else {
			t.Errorf("the lock history is not linearizable against the rack-lock model (%s)", res)
		}
	}

	t.Logf("summary: %d operations by %d agents over %s: %d grants, %d refusals (%d busy, %d full; %d refuse events in the history), %d releases, validations %d ok / %d stale, %d unknown outcomes, %d stop periods",
		len(ops), len(fleet), duration, sum.grants, sum.busy+sum.full, sum.busy, sum.full, refuseEvents, sum.releases, sum.validOK, sum.validStale, sum.unknown, len(stops))
	t.Logf("summary: %d suspect events, last index %d, %d leader changes seen (%s)",
		countKind(events, "suspect"), upTo, mon.changes(), strings.Join(mon.leaders(), " -> "))
	t.Logf("summary: nemesis %s", nem.summary())
	if sum.grants == 0 {
		t.Errorf("no grant at all: the test exercised nothing")
	}
}

func withTimeout(ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	_ = cancel // ends with the parent or the timeout
	return ctx
}

type summary struct{ grants, busy, full, releases, validOK, validStale, unknown int }

func (s *summary) count(op rawOp) {
	switch {
	case op.out.Result == resUnknown:
		s.unknown++
	case op.in.Kind == opAcquire && op.out.Result == resOK:
		s.grants++
	case op.out.Result == resBusy:
		s.busy++
	case op.out.Result == resFull:
		s.full++
	case op.in.Kind == opRelease:
		s.releases++
	case op.in.Kind == opValidate && op.out.Result == resOK:
		s.validOK++
	case op.in.Kind == opValidate:
		s.validStale++
	}
}

func countKind(evs []manager.Event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// result classifies an answer.
func result(err error) string {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, manager.ErrRackBusy):
		return resBusy
	case errors.Is(err, manager.ErrRackFull):
		return resFull
	case errors.Is(err, manager.ErrStaleToken):
		return resStale
	}
	return resUnknown
}

// runAgent is one node: acquire, validate, stop, start, release, over and
// over until runCtx ends; then it finishes its cycle, retrying against the
// healed cluster until finishCtx ends. An acquire or release whose outcome
// is unknown is asked again with the same request (or grant) until the
// manager answers for sure.
func runAgent(runCtx, finishCtx context.Context, id int, a agentSpec, cl *client.Client, rec *recorder) {
	do := func(in lockInput, f func(ctx context.Context) lockOutput) lockOutput {
		for {
			call := rec.now()
			out := f(finishCtx)
			rec.add(rawOp{client: id, in: in, out: out, call: call, ret: rec.now()})
			if out.Result != resUnknown || finishCtx.Err() != nil {
				return out
			}
			time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
		}
	}
	for n := 1; runCtx.Err() == nil; n++ {
		req := fmt.Sprintf("%s-%d", a.node, n)
		in := lockInput{Kind: opAcquire, Node: a.node, Rack: a.rack, Limit: rackLimit(a.rack), Req: req}
		out := do(in, func(ctx context.Context) lockOutput {
			g, err := cl.Acquire(ctx, manager.Acquire{Cluster: testCluster, Rack: a.rack, Node: a.node,
				Operation: "jepsen", RequestID: req, Lease: grantLease})
			return lockOutput{Result: result(err), Grant: g.ID, Token: g.Token}
		})
		if out.Result != resOK {
			time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
			continue
		}
		grant, token := out.Grant, out.Token
		call := rec.now()
		_, err := cl.Validate(finishCtx, grant, token)
		if r := result(err); r != resUnknown {
			rec.add(rawOp{client: id, in: lockInput{Kind: opValidate, Node: a.node, Rack: a.rack, Grant: grant, Token: token},
				out: lockOutput{Result: r}, call: call, ret: rec.now()})
			if r == resOK {
				// "Stop" the node: the lock says no other rack is down.
				from := rec.now()
				time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
				rec.stopped(stopPeriod{node: a.node, rack: a.rack, from: from, to: rec.now()})
			}
		}
		// "Start" it again, then give the lock back.
		do(lockInput{Kind: opRelease, Node: a.node, Rack: a.rack, Grant: grant, Token: token}, func(ctx context.Context) lockOutput {
			_, err := cl.Release(ctx, manager.Release{GrantID: grant, Token: token})
			return lockOutput{Result: result(err)}
		})
	}
}

// setRackLimit sets a rack's max holders with PUT /v1/racks, which the
// client has no method for.
func setRackLimit(ctx context.Context, endpoints []string, rack string, n int) error {
	body, _ := json.Marshal(manager.RackConfig{Cluster: testCluster, Rack: rack, MaxHolders: n})
	var last error
	for i := 0; ctx.Err() == nil; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, endpoints[i%len(endpoints)]+"/v1/racks", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

func waitApplied(ctx context.Context, r *cluster.Replica, index uint64) (uint64, error) {
	for {
		st, err := r.Status(ctx)
		if err == nil && st.AppliedIndex >= index {
			return st.AppliedIndex, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (last status %+v, err %v)", ctx.Err(), st, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fetchHistory reads a replica's whole history from its own state, page
// by page (the replica bounds a page). A page may end in the middle of an
// index's events, so the next page starts again at its last index, and
// that index's events are taken from there.
func fetchHistory(ctx context.Context, r *cluster.Replica) ([]manager.Event, error) {
	cl := r.Client(10 * time.Second)
	var all []manager.Event
	var from uint64
	for {
		evs, err := cl.History(ctx, from, 0, 0)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return all, nil
		}
		last := evs[len(evs)-1].Index
		if last == from {
			return append(all, evs...), nil
		}
		for _, e := range evs {
			if e.Index < last {
				all = append(all, e)
			}
		}
		from = last
	}
}

func until(evs []manager.Event, index uint64) []manager.Event {
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Index > index })
	return evs[:i]
}

func diffHistories(a, b []manager.Event) string {
	for i := range min(len(a), len(b)) {
		x, _ := json.Marshal(a[i])
		y, _ := json.Marshal(b[i])
		if !bytes.Equal(x, y) {
			return fmt.Sprintf("event %d: %s vs %s", i, x, y)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d events vs %d", len(a), len(b))
	}
	return ""
}

// leaderMonitor polls for the leader and counts changes.
type leaderMonitor struct {
	mu  sync.Mutex
	seq []string // leader IDs in the order seen; guarded by mu
}

// run polls until ctx ends.
func (m *leaderMonitor) run(ctx context.Context, c *cluster.Cluster) {
	for ctx.Err() == nil {
		if l := c.Leader(withTimeout(ctx, time.Second)); l != nil {
			m.mu.Lock()
			if len(m.seq) == 0 || m.seq[len(m.seq)-1] != l.ID {
				m.seq = append(m.seq, l.ID)
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *leaderMonitor) changes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(0, len(m.seq)-1)
}

func (m *leaderMonitor) leaders() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seq...)
}
