package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/manager"
)

func acquire(rack, node, req string) manager.Acquire {
	return manager.Acquire{Cluster: "c1", Rack: rack, Node: node, Operation: "jvmquake", RequestID: req, Lease: time.Minute}
}

func validatePath(g manager.Grant) string {
	return fmt.Sprintf("/v1/locks/validate?grant_id=%s&token=%d", g.ID, g.Token)
}

// TestLocksOnLeaderAndFollowers runs a lock's life through the HTTP API of
// a 3-replica cluster, sending half of it to followers, which forward.
func TestLocksOnLeaderAndFollowers(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	l := waitLeader(t, c.servers)
	leader, f1, f2 := c.servers[l], c.servers[(l+1)%3], c.servers[(l+2)%3]

	var g manager.Grant
	mustCall(t, leader, "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, &g)
	if g.State != manager.Held || g.Token == 0 || g.Rack != "r1" {
		t.Fatalf("grant %+v: want held with a token on r1", g)
	}
	// Idempotent per request ID, through a follower.
	var again manager.Grant
	mustCall(t, f1, "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, &again)
	if again.ID != g.ID || again.Token != g.Token {
		t.Fatalf("retried acquire: got %s/%d, want %s/%d", again.ID, again.Token, g.ID, g.Token)
	}
	mustCall(t, f2, "GET", validatePath(g), nil, http.StatusOK, nil)

	status, raw := call(t, f1, "POST", "/v1/locks/acquire", testToken, acquire("r2", "n2", "q2"))
	if status != http.StatusConflict || errCode(t, raw) != "rack_busy" {
		t.Fatalf("acquire of another rack on a follower: %d %s, want 409 rack_busy", status, raw)
	}
	mustCall(t, f1, "POST", "/v1/locks/checkpoint", manager.Checkpoint{GrantID: g.ID, Token: g.Token, Step: "drain"}, http.StatusOK, nil)
	status, raw = call(t, f2, "POST", "/v1/locks/renew", testToken, manager.Renew{GrantID: g.ID, Token: g.Token + 1})
	if status != http.StatusConflict || errCode(t, raw) != "stale_token" {
		t.Fatalf("renew with a wrong token: %d %s, want 409 stale_token", status, raw)
	}
	mustCall(t, f2, "POST", "/v1/locks/release", manager.Release{GrantID: g.ID, Token: g.Token}, http.StatusOK, nil)
	status, raw = call(t, f1, "GET", validatePath(g), testToken, nil)
	if status != http.StatusConflict || errCode(t, raw) != "stale_token" {
		t.Fatalf("validate after release: %d %s, want 409 stale_token", status, raw)
	}
	var g2 manager.Grant
	mustCall(t, f2, "POST", "/v1/locks/acquire", acquire("r2", "n2", "q2b"), http.StatusOK, &g2)
	if g2.Token <= g.Token {
		t.Fatalf("fencing token %d after %d: want it to grow", g2.Token, g.Token)
	}
	status, raw = call(t, f1, "POST", "/v1/locks/force-release", testToken, manager.ForceRelease{GrantID: "nope", Reason: "x", By: "op"})
	if status != http.StatusNotFound {
		t.Fatalf("force-release of an unknown grant: %d %s, want 404", status, raw)
	}

	var locks []manager.Grant
	mustCall(t, f1, "GET", "/v1/locks?cluster=c1", nil, http.StatusOK, &locks)
	if len(locks) != 1 || locks[0].ID != g2.ID {
		t.Fatalf("locks %+v: want only %s", locks, g2.ID)
	}
	// Every replica applies the same state.
	for _, s := range c.servers {
		eventually(t, 5*time.Second, s.cfg.ID+" catches up", func() bool {
			ls := s.fsm.Locks("c1")
			return len(ls) == 1 && ls[0].ID == g2.ID
		})
	}

	var st Status
	mustCall(t, f1, "GET", "/v1/status", nil, http.StatusOK, &st)
	if st.State != "Follower" || st.Leader != leader.cfg.ID || st.LeaderHTTP != leader.cfg.HTTPAddr || len(st.Peers) != 3 {
		t.Fatalf("follower status %+v", st)
	}
}

// TestOtherCommands covers the goals, reports, healthy and history routes.
func TestOtherCommands(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	l := waitLeader(t, c.servers)
	f := c.servers[(l+1)%3]

	mustCall(t, f, "PUT", "/v1/goals", manager.SetGoals{Level: manager.LevelCluster, Key: "c1", Document: "gc:\n  max_pause: 1s\n"}, http.StatusOK, nil)
	var idx IndexAnswer
	mustCall(t, f, "PUT", "/v1/goals", manager.SetGoals{Level: manager.LevelRack, Key: "r1", Document: "gc:\n  max_pause: 2s\n"}, http.StatusOK, &idx)
	eventually(t, 5*time.Second, "follower applies goals", func() bool { return f.fsm.LastIndex() >= idx.Index })
	var goals GoalsAnswer
	mustCall(t, f, "GET", "/v1/goals?cluster=c1&rack=r1&node=n1", nil, http.StatusOK, &goals)
	if !strings.Contains(goals.Merged, "2s") || len(goals.Levels) != 2 {
		t.Fatalf("goals %+v: want the rack's 2s and two levels", goals)
	}

	mustCall(t, f, "POST", "/v1/reports", manager.Report{Node: "n1", ID: "d1", Decision: []byte(`{"action":"none"}`)}, http.StatusOK, &idx)
	eventually(t, 5*time.Second, "follower applies report", func() bool { return f.fsm.LastIndex() >= idx.Index })
	var reports []manager.Report
	mustCall(t, f, "GET", "/v1/reports?node=n1", nil, http.StatusOK, &reports)
	if len(reports) != 1 || reports[0].ID != "d1" {
		t.Fatalf("reports %+v", reports)
	}
	mustCall(t, f, "POST", "/v1/nodes/healthy", manager.Healthy{Cluster: "c1", Node: "n1"}, http.StatusOK, nil)

	// A long poll from past the end returns as soon as an event comes.
	from := c.servers[l].fsm.LastIndex() + 1
	done := make(chan []manager.Event, 1)
	go func() { // ends with the long poll; no t.Fatal off the test goroutine
		var ev []manager.Event
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v1/history?from=%d&wait=10s", f.cfg.HTTPAddr, from), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&ev)
			resp.Body.Close()
		}
		done <- ev
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	mustCall(t, c.servers[l], "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, nil)
	select {
	case ev := <-done:
		if len(ev) == 0 || ev[0].Kind != "grant" || ev[0].Index < from {
			t.Fatalf("long poll events %+v: want the grant at or after %d", ev, from)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("long poll returned after %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return")
	}
	// An empty long poll ends at its wait.
	start = time.Now()
	var ev []manager.Event
	mustCall(t, f, "GET", "/v1/history?from=999999&wait=200ms", nil, http.StatusOK, &ev)
	if len(ev) != 0 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("empty long poll: %d events after %s", len(ev), time.Since(start))
	}
}

// TestLeaseExpiry checks that the leader proposes expires: a lease that
// lapses turns its grant suspect, counted in the metric.
func TestLeaseExpiry(t *testing.T) {
	c := newInmemCluster(t, 3, func(cfg *Config) { cfg.ExpireInterval = 50 * time.Millisecond })
	l := waitLeader(t, c.servers)
	a := acquire("r1", "n1", "q1")
	a.Lease = 200 * time.Millisecond
	var g manager.Grant
	mustCall(t, c.servers[l], "POST", "/v1/locks/acquire", a, http.StatusOK, &g)
	eventually(t, 5*time.Second, "grant turns suspect", func() bool {
		ls := c.servers[l].fsm.Locks("c1")
		return len(ls) == 1 && ls[0].State == manager.Suspect
	})
	status, raw := call(t, c.servers[l], "GET", validatePath(g), testToken, nil)
	if status != http.StatusConflict {
		t.Fatalf("validate of a suspect grant: %d %s, want 409", status, raw)
	}
	_, body := call(t, c.servers[l], "GET", "/metrics", "", nil)
	for _, want := range []string{
		"nerve_manager_lease_expiries_total 1",
		"nerve_manager_leader 1",
		`nerve_manager_grants{state="suspect"} 1`,
		`nerve_manager_api_request_duration_seconds_count{code="200",route="POST /v1/locks/acquire"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Healthy frees the rack.
	mustCall(t, c.servers[(l+1)%3], "POST", "/v1/nodes/healthy", manager.Healthy{Cluster: "c1", Node: "n1"}, http.StatusOK, nil)
	if ls := c.servers[l].fsm.Locks("c1"); len(ls) != 0 {
		t.Fatalf("after healthy: locks %+v, want none", ls)
	}
}

// TestPartitionedLeaderCannotGrant cuts the leader of 5 off: the majority
// elects a new leader and goes on; the old leader neither grants nor
// validates, and after healing exactly one rack holds the lock.
func TestPartitionedLeaderCannotGrant(t *testing.T) {
	c := newInmemCluster(t, 5, nil)
	l := waitLeader(t, c.servers)
	old := c.servers[l]
	var g manager.Grant
	mustCall(t, old, "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, &g)
	eventually(t, 5*time.Second, "grant replicated", func() bool {
		for _, s := range c.servers {
			if len(s.fsm.Locks("c1")) != 1 {
				return false
			}
		}
		return true
	})

	c.isolate(l)
	nl := waitLeader(t, c.servers, l)
	leader := c.servers[nl]
	follower := c.servers[(nl+1)%5]
	if follower == old {
		follower = c.servers[(nl+2)%5]
	}

	// The majority releases r1 and grants r3, through a follower.
	mustCall(t, follower, "POST", "/v1/locks/release", manager.Release{GrantID: g.ID, Token: g.Token}, http.StatusOK, nil)
	var g3 manager.Grant
	mustCall(t, follower, "POST", "/v1/locks/acquire", acquire("r3", "n3", "q3"), http.StatusOK, &g3)

	// The old leader must not grant r2 nor call r1's released grant valid.
	if status, raw := call(t, old, "POST", "/v1/locks/acquire", testToken, acquire("r2", "n2", "q2")); status == http.StatusOK {
		t.Fatalf("partitioned old leader granted r2: %s", raw)
	}
	if status, raw := call(t, old, "GET", validatePath(g), testToken, nil); status == http.StatusOK {
		t.Fatalf("partitioned old leader validated a released grant: %s", raw)
	}
	mustCall(t, leader, "GET", validatePath(g3), nil, http.StatusOK, nil)

	c.heal(l)
	for _, s := range c.servers {
		eventually(t, 10*time.Second, s.cfg.ID+" converges", func() bool {
			ls := s.fsm.Locks("c1")
			return s.fsm.LastIndex() >= leader.fsm.LastIndex() && len(ls) == 1 && ls[0].ID == g3.ID
		})
	}
	var locks []manager.Grant
	mustCall(t, old, "GET", "/v1/locks?cluster=c1", nil, http.StatusOK, &locks)
	if len(locks) != 1 || locks[0].Rack != "r3" {
		t.Fatalf("locks after healing %+v: want only r3", locks)
	}
}

// TestLeaderLoss stops the leader of 3: the other two elect a leader and
// writes go on.
func TestLeaderLoss(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	l := waitLeader(t, c.servers)
	var g manager.Grant
	mustCall(t, c.servers[(l+1)%3], "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, &g)
	if err := c.servers[l].Close(); err != nil {
		t.Fatal(err)
	}
	rest := []*Server{c.servers[(l+1)%3], c.servers[(l+2)%3]}
	nl := waitLeader(t, rest)
	f := rest[1-nl]
	mustCall(t, f, "POST", "/v1/locks/release", manager.Release{GrantID: g.ID, Token: g.Token}, http.StatusOK, nil)
	mustCall(t, f, "POST", "/v1/locks/acquire", acquire("r2", "n2", "q2"), http.StatusOK, nil)
	mustCall(t, rest[nl], "GET", "/v1/locks?cluster=c1", nil, http.StatusOK, nil)
}

// TestAuthAndBodies checks that refused requests change nothing.
func TestAuthAndBodies(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	l := waitLeader(t, c.servers)
	leader, f := c.servers[l], c.servers[(l+1)%3]
	before := leader.fsm.LastIndex()

	for _, s := range []*Server{leader, f} {
		for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken)} {
			status, raw := call(t, s, "POST", "/v1/locks/acquire", tok, acquire("r1", "n1", "q1"))
			if status != http.StatusUnauthorized || errCode(t, raw) != "unauthorized" {
				t.Fatalf("acquire with token %q on %s: %d %s, want 401", tok, s.cfg.ID, status, raw)
			}
			if status, _ := call(t, s, "GET", "/v1/locks", tok, nil); status != http.StatusUnauthorized {
				t.Fatalf("locks with token %q: %d, want 401", tok, status)
			}
		}
	}
	big := `{"cluster":"c1","rack":"r1","node":"n1","request_id":"q","operation":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	cases := []struct {
		name, body string
		want       int
	}{
		{"oversized", big, http.StatusRequestEntityTooLarge},
		{"malformed", `{"cluster":`, http.StatusBadRequest},
		{"unknown field", `{"cluster":"c1","rack":"r1","node":"n1","request_id":"q","evil":1}`, http.StatusBadRequest},
		{"trailing data", `{"cluster":"c1","rack":"r1","node":"n1","request_id":"q"} {}`, http.StatusBadRequest},
		{"empty", ``, http.StatusBadRequest},
		{"missing fields", `{"cluster":"c1"}`, http.StatusBadRequest},
		{"wrong type", `{"cluster":"c1","rack":"r1","node":"n1","request_id":"q","lease":"1m"}`, http.StatusBadRequest},
	}
	for _, tc := range cases {
		for _, s := range []*Server{leader, f} {
			status, raw := call(t, s, "POST", "/v1/locks/acquire", testToken, tc.body)
			if status != tc.want {
				t.Errorf("%s on %s: %d %s, want %d", tc.name, s.cfg.ID, status, raw, tc.want)
				continue
			}
			var e apiError
			if err := jsonUnmarshal(raw, &e); err != nil || e.Error == "" || e.Code == "" {
				t.Errorf("%s: error body %s: want {error, code}", tc.name, raw)
			}
		}
	}
	// "missing fields" is refused before the log; nothing was applied.
	if got := leader.fsm.LastIndex(); got != before {
		t.Fatalf("applied index %d after refused requests, want %d", got, before)
	}
	if ls := leader.fsm.Locks(""); len(ls) != 0 {
		t.Fatalf("locks %+v after refused requests", ls)
	}
	if status, _ := call(t, f, "GET", "/healthz", "", nil); status != http.StatusOK {
		t.Fatalf("healthz: %d, want 200 without a token", status)
	}
	if status, _ := call(t, f, "GET", "/metrics", "", nil); status != http.StatusOK {
		t.Fatalf("metrics: %d, want 200 without a token", status)
	}
	if status, _ := call(t, f, "GET", "/v1/locks/validate?grant_id=x&token=abc", testToken, nil); status != http.StatusBadRequest {
		t.Fatalf("validate with a bad token: %d, want 400", status)
	}
}
