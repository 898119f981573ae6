package fsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/manager"
)

func acq(node, rack, req string) *manager.Acquire {
	return &manager.Acquire{Cluster: "c1", Rack: rack, Node: node, Operation: "jvmquake", RequestID: req}
}

type step struct {
	op    manager.Op
	at    time.Duration
	body  any
	err   error
	kinds []string // events the step appends; nil means none
	check func(t *testing.T, f *FSM, r *Result)
}

func held(t *testing.T, f *FSM, id string, want manager.GrantState) {
	t.Helper()
	g, ok := f.Grant(id)
	if !ok {
		t.Fatalf("Grant(%s) not found", id)
	}
	if g.State != want {
		t.Fatalf("grant %s state %s, want %s", id, g.State, want)
	}
}

func locks(want ...string) func(*testing.T, *FSM, *Result) {
	return func(t *testing.T, f *FSM, _ *Result) {
		t.Helper()
		var got []string
		for _, g := range f.Locks("c1") {
			got = append(got, g.ID+":"+string(g.State))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Locks(c1) = %v, want %v", got, want)
		}
	}
}

func TestTransitions(t *testing.T) {
	const (
		acquire  = manager.OpAcquire
		renew    = manager.OpRenew
		release  = manager.OpRelease
		ckpt     = manager.OpCheckpoint
		healthy  = manager.OpHealthy
		force    = manager.OpForceRelease
		expire   = manager.OpExpire
		rackCfg  = manager.OpRackConfig
		sec      = time.Second
		grant    = "grant"
		refuse   = "refuse"
		suspect  = "suspect"
		released = "release"
	)
	grant1 := step{op: acquire, body: acq("n1", "r1", "q1"), kinds: []string{grant}}
	tests := []struct {
		name  string
		steps []step
	}{
		{"acquire grants with token, id and default lease", []step{
			{op: acquire, at: 5 * sec, body: acq("n1", "r1", "q1"), kinds: []string{grant}, check: func(t *testing.T, f *FSM, r *Result) {
				want := manager.Grant{ID: "g-1", Token: 1, Cluster: "c1", Rack: "r1", Node: "n1", Operation: "jvmquake",
					RequestID: "q1", State: manager.Held, Granted: t0.Add(5 * sec), Expires: t0.Add(65 * sec)}
				if r.Grant == nil || *r.Grant != want {
					t.Fatalf("grant = %+v, want %+v", r.Grant, want)
				}
				if r.Events[0].Index != 1 || !r.Events[0].At.Equal(t0.Add(5*sec)) || *r.Events[0].Grant != want {
					t.Fatalf("event = %+v", r.Events[0])
				}
			}},
		}},
		{"lease is capped", []step{
			{op: acquire, body: &manager.Acquire{Cluster: "c1", Rack: "r1", Node: "n1", RequestID: "q", Lease: 48 * time.Hour}, kinds: []string{grant},
				check: func(t *testing.T, f *FSM, r *Result) {
					if got := r.Grant.Expires.Sub(r.Grant.Granted); got != MaxLease {
						t.Fatalf("lease %s, want %s", got, MaxLease)
					}
				}},
		}},
		{"acquire is idempotent per node and request", []step{
			grant1,
			{op: acquire, at: sec, body: acq("n1", "r1", "q1"), check: func(t *testing.T, f *FSM, r *Result) {
				if r.Grant.ID != "g-1" || r.Grant.Token != 1 || !r.Grant.Granted.Equal(t0) {
					t.Fatalf("retry gave %+v, want g-1 unchanged", r.Grant)
				}
			}},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, kinds: []string{released}},
			{op: acquire, body: acq("n1", "r1", "q1"), check: func(t *testing.T, f *FSM, r *Result) {
				if r.Grant.ID != "g-1" || r.Grant.State != manager.Released {
					t.Fatalf("retry after release gave %+v, want released g-1", r.Grant)
				}
			}},
			{op: acquire, body: acq("n1", "r1", "q2"), kinds: []string{grant}, check: func(t *testing.T, f *FSM, r *Result) {
				if r.Grant.Token != 2 {
					t.Fatalf("new request got token %d, want 2", r.Grant.Token)
				}
			}},
		}},
		{"another rack of the cluster is busy", []step{
			grant1,
			{op: acquire, body: acq("n2", "r2", "q1"), err: manager.ErrRackBusy, kinds: []string{refuse}},
			{op: acquire, body: &manager.Acquire{Cluster: "c2", Rack: "r2", Node: "n2", RequestID: "q2"}, kinds: []string{grant}},
		}},
		{"a repeat of a refused acquire is refused again, even once the rack is free", []step{
			grant1,
			{op: acquire, body: acq("n2", "r2", "q1"), err: manager.ErrRackBusy, kinds: []string{refuse}},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, kinds: []string{released}},
			// A delayed duplicate of q1: granting it would lock the
			// cluster for a node that was told no and moved on.
			{op: acquire, body: acq("n2", "r2", "q1"), err: manager.ErrRackBusy, kinds: []string{refuse}, check: locks()},
			{op: acquire, body: acq("n2", "r2", "q2"), kinds: []string{grant}, check: locks("g-2:held")},
		}},
		{"the rack is full", []step{
			grant1,
			{op: acquire, body: acq("n2", "r1", "q1"), err: manager.ErrRackFull, kinds: []string{refuse}},
			{op: acquire, body: acq("n1", "r1", "other"), err: manager.ErrRackFull, kinds: []string{refuse}},
		}},
		{"rack config raises and restores the limit", []step{
			{op: rackCfg, body: &manager.RackConfig{Cluster: "c1", Rack: "r1", MaxHolders: 2}, kinds: []string{"rack_config"}},
			grant1,
			{op: acquire, body: acq("n2", "r1", "q1"), kinds: []string{grant}},
			{op: acquire, body: acq("n3", "r1", "q1"), err: manager.ErrRackFull, kinds: []string{refuse}},
			{op: acquire, body: acq("n3", "r2", "q2"), err: manager.ErrRackBusy, kinds: []string{refuse}},
			{op: rackCfg, body: &manager.RackConfig{Cluster: "c1", Rack: "r1"}, kinds: []string{"rack_config"}},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, kinds: []string{released}},
			{op: acquire, body: acq("n3", "r1", "q3"), err: manager.ErrRackFull, kinds: []string{refuse}, check: locks("g-2:held")},
		}},
		{"renew extends the lease", []step{
			grant1,
			{op: renew, at: 30 * sec, body: &manager.Renew{GrantID: "g-1", Token: 1, Lease: 10 * sec}, kinds: []string{"renew"},
				check: func(t *testing.T, f *FSM, r *Result) {
					if !r.Grant.Expires.Equal(t0.Add(40 * sec)) {
						t.Fatalf("expires %v, want t0+40s", r.Grant.Expires)
					}
				}},
			{op: expire, at: 39 * sec, check: locks("g-1:held")},
			{op: expire, at: 40 * sec, kinds: []string{suspect}, check: locks("g-1:suspect")},
		}},
		{"stale tokens are refused", []step{
			grant1,
			{op: renew, body: &manager.Renew{GrantID: "g-1", Token: 2}, err: manager.ErrStaleToken},
			{op: renew, body: &manager.Renew{GrantID: "g-9", Token: 1}, err: manager.ErrStaleToken},
			{op: ckpt, body: &manager.Checkpoint{GrantID: "g-1", Token: 7, Step: "drain"}, err: manager.ErrStaleToken},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 0}, err: manager.ErrStaleToken, check: locks("g-1:held")},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, kinds: []string{released}},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, err: manager.ErrStaleToken},
			{op: renew, body: &manager.Renew{GrantID: "g-1", Token: 1}, err: manager.ErrStaleToken},
			{op: ckpt, body: &manager.Checkpoint{GrantID: "g-1", Token: 1, Step: "x"}, err: manager.ErrStaleToken, check: locks()},
		}},
		{"checkpoint records the step", []step{
			grant1,
			{op: ckpt, body: &manager.Checkpoint{GrantID: "g-1", Token: 1, Step: "drained"}, kinds: []string{"checkpoint"},
				check: func(t *testing.T, f *FSM, r *Result) {
					if g, _ := f.Grant("g-1"); g.Step != "drained" {
						t.Fatalf("step %q, want drained", g.Step)
					}
				}},
		}},
		{"expire keeps the rack busy until healthy", []step{
			grant1,
			{op: expire, at: 59 * sec, check: locks("g-1:held")},
			{op: expire, at: 60 * sec, kinds: []string{suspect}, check: locks("g-1:suspect")},
			{op: expire, at: 120 * sec},
			{op: acquire, at: 121 * sec, body: acq("n2", "r2", "q1"), err: manager.ErrRackBusy, kinds: []string{refuse}},
			{op: acquire, at: 121 * sec, body: acq("n2", "r1", "q2"), err: manager.ErrRackFull, kinds: []string{refuse}},
			{op: ckpt, body: &manager.Checkpoint{GrantID: "g-1", Token: 1, Step: "still here"}, kinds: []string{"checkpoint"}},
			{op: healthy, body: &manager.Healthy{Cluster: "c1", Node: "n2"}, check: locks("g-1:suspect")},
			{op: healthy, body: &manager.Healthy{Cluster: "c2", Node: "n1"}, check: locks("g-1:suspect")},
			{op: healthy, body: &manager.Healthy{Cluster: "c1", Node: "n1"}, kinds: []string{"healthy"}, check: locks()},
			{op: acquire, at: 122 * sec, body: acq("n2", "r2", "q3"), kinds: []string{grant}},
		}},
		{"healthy leaves held grants alone", []step{
			grant1,
			{op: healthy, body: &manager.Healthy{Cluster: "c1", Node: "n1"}, check: locks("g-1:held")},
		}},
		{"expire then force release frees the rack", []step{
			grant1,
			{op: expire, at: 61 * sec, kinds: []string{suspect}},
			{op: force, body: &manager.ForceRelease{GrantID: "g-1", Reason: "node replaced", By: "alice"}, kinds: []string{"force_release"},
				check: func(t *testing.T, f *FSM, r *Result) {
					if d := r.Events[0].Detail; !strings.Contains(d, "alice") || !strings.Contains(d, "node replaced") {
						t.Fatalf("detail %q lacks by and reason", d)
					}
					locks()(t, f, r)
				}},
			{op: force, body: &manager.ForceRelease{GrantID: "g-1", Reason: "again", By: "alice"}},
			{op: force, body: &manager.ForceRelease{GrantID: "g-7", Reason: "x", By: "alice"}, err: manager.ErrNotFound},
			{op: acquire, body: acq("n2", "r2", "q1"), kinds: []string{grant}},
		}},
		{"force release of a held grant", []step{
			grant1,
			{op: force, body: &manager.ForceRelease{GrantID: "g-1", Reason: "stuck", By: "bob"}, kinds: []string{"force_release"}, check: locks()},
		}},
		{"a suspect grant renewed by its token is held again", []step{
			grant1,
			{op: expire, at: 60 * sec, kinds: []string{suspect}},
			{op: renew, at: 70 * sec, body: &manager.Renew{GrantID: "g-1", Token: 1}, kinds: []string{"renew"}, check: locks("g-1:held")},
		}},
		{"a suspect grant may be released with its token", []step{
			grant1,
			{op: expire, at: 60 * sec, kinds: []string{suspect}},
			{op: release, body: &manager.Release{GrantID: "g-1", Token: 1}, kinds: []string{released}, check: locks()},
		}},
		{"bad requests change nothing", []step{
			{op: acquire, body: &manager.Acquire{Cluster: "c1", Rack: "r1", RequestID: "q"}, err: manager.ErrBadRequest},
			{op: acquire, body: &manager.Acquire{Cluster: "c1", Rack: "r1", Node: "n", RequestID: "q", Lease: -1}, err: manager.ErrBadRequest},
			{op: renew, body: &manager.Renew{Token: 1}, err: manager.ErrBadRequest},
			{op: ckpt, body: &manager.Checkpoint{GrantID: "g-1", Token: 1}, err: manager.ErrBadRequest},
			{op: healthy, body: &manager.Healthy{Node: "n1"}, err: manager.ErrBadRequest},
			{op: force, body: &manager.ForceRelease{GrantID: "g-1", By: "x"}, err: manager.ErrBadRequest},
			{op: rackCfg, body: &manager.RackConfig{Cluster: "c", Rack: "r", MaxHolders: -1}, err: manager.ErrBadRequest},
			{op: manager.OpReport, body: &manager.Report{Node: "n1"}, err: manager.ErrBadRequest},
			{op: "reboot", body: &manager.Healthy{}, err: manager.ErrBadRequest},
			{op: release, err: manager.ErrBadRequest, check: locks()},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for i, s := range tt.steps {
				r := h.apply(s.op, s.at, s.body)
				if s.err == nil && r.Err != nil {
					t.Fatalf("step %d (%s): err = %v, want nil", i, s.op, r.Err)
				}
				if s.err != nil && !errors.Is(r.Err, s.err) {
					t.Fatalf("step %d (%s): err = %v, want %v", i, s.op, r.Err, s.err)
				}
				if got := kinds(r.Events); !slices.Equal(got, append([]string{}, s.kinds...)) {
					t.Fatalf("step %d (%s): events %v, want %v", i, s.op, got, s.kinds)
				}
				for _, e := range r.Events {
					if e.Index != uint64(i+1) || !e.At.Equal(t0.Add(s.at)) {
						t.Fatalf("step %d: event index %d at %v, want %d at %v", i, e.Index, e.At, i+1, t0.Add(s.at))
					}
				}
				if s.check != nil {
					s.check(t, h.f, r)
				}
				if got := h.f.LastIndex(); got != uint64(i+1) {
					t.Fatalf("LastIndex %d, want %d", got, i+1)
				}
				checkInvariants(t, h.f)
			}
			// The history holds exactly what the results reported, in order.
			var want []string
			for _, s := range tt.steps {
				want = append(want, s.kinds...)
			}
			if got := kinds(h.f.History(0, 0)); !slices.Equal(got, append([]string{}, want...)) {
				t.Fatalf("history %v, want %v", got, want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	h := newHarness(t)
	h.apply(manager.OpAcquire, 0, acq("n1", "r1", "q1"))
	h.apply(manager.OpRackConfig, 0, &manager.RackConfig{Cluster: "c1", Rack: "r1", MaxHolders: 2})
	h.apply(manager.OpAcquire, 0, acq("n2", "r1", "q1"))
	h.apply(manager.OpRelease, 0, &manager.Release{GrantID: "g-2", Token: 2})
	h.apply(manager.OpAcquire, 0, &manager.Acquire{Cluster: "c1", Rack: "r1", Node: "n3", RequestID: "q", Lease: time.Second})
	h.apply(manager.OpExpire, time.Second, nil)
	tests := []struct {
		id    string
		token uint64
		err   error
	}{
		{"g-1", 1, nil},
		{"g-1", 2, manager.ErrStaleToken},
		{"g-2", 2, manager.ErrStaleToken}, // released
		{"g-3", 3, manager.ErrStaleToken}, // suspect
		{"g-4", 4, manager.ErrStaleToken}, // unknown
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.id, tt.token), func(t *testing.T) {
			g, err := h.f.Validate(tt.id, tt.token)
			wantErr(t, err, tt.err)
			if err == nil && (g.ID != tt.id || g.Token != tt.token) {
				t.Fatalf("Validate gave %+v", g)
			}
		})
	}
}

func TestLocksOrder(t *testing.T) {
	h := newHarness(t)
	h.apply(manager.OpRackConfig, 0, &manager.RackConfig{Cluster: "c1", Rack: "r1", MaxHolders: 3})
	h.apply(manager.OpAcquire, 0, acq("n3", "r1", "q"))
	h.apply(manager.OpAcquire, 0, acq("n1", "r1", "q"))
	h.apply(manager.OpAcquire, 0, &manager.Acquire{Cluster: "c0", Rack: "z", Node: "n9", RequestID: "q"})
	h.apply(manager.OpAcquire, 0, &manager.Acquire{Cluster: "c0", Rack: "z", Node: "n8", RequestID: "q"}) // full
	h.apply(manager.OpExpire, time.Hour, nil)
	var got []string
	for _, g := range h.f.Locks("") {
		got = append(got, fmt.Sprintf("%s/%s/%d/%s", g.Cluster, g.Rack, g.Token, g.State))
	}
	want := []string{"c0/z/3/suspect", "c1/r1/1/suspect", "c1/r1/2/suspect"}
	if !slices.Equal(got, want) {
		t.Fatalf("Locks = %v, want %v", got, want)
	}
	if got := h.f.Locks("nope"); len(got) != 0 {
		t.Fatalf("Locks(nope) = %v, want none", got)
	}
}

func TestTokensStrictlyIncrease(t *testing.T) {
	h := newHarness(t)
	h.f.maxReleased = 5 // forget old grants: tokens must still never repeat
	var last uint64
	for i := range 300 {
		if i%50 == 25 {
			// Move to a restored replica and go on there.
			h.f = restored(t, h.f)
		}
		rack := fmt.Sprintf("r%d", i%3)
		r := h.apply(manager.OpAcquire, time.Duration(i)*time.Second, acq(fmt.Sprintf("n%d", i%7), rack, fmt.Sprintf("q%d", i)))
		if r.Err != nil {
			t.Fatalf("cycle %d: %v", i, r.Err)
		}
		if r.Grant.Token <= last {
			t.Fatalf("cycle %d: token %d after %d", i, r.Grant.Token, last)
		}
		last = r.Grant.Token
		if i%2 == 0 {
			r = h.apply(manager.OpRelease, time.Duration(i)*time.Second, &manager.Release{GrantID: r.Grant.ID, Token: r.Grant.Token})
		} else {
			r = h.apply(manager.OpForceRelease, time.Duration(i)*time.Second, &manager.ForceRelease{GrantID: r.Grant.ID, Reason: "test", By: "t"})
		}
		if r.Err != nil {
			t.Fatalf("cycle %d: release: %v", i, r.Err)
		}
		checkInvariants(t, h.f)
	}
	if last != 300 {
		t.Fatalf("last token %d, want 300", last)
	}
}

func TestReports(t *testing.T) {
	h := newHarness(t)
	h.f.maxReports = 3
	for i := range 5 {
		r := h.apply(manager.OpReport, 0, &manager.Report{Node: "n1", ID: fmt.Sprint(i), Decision: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		if r.Err != nil || !slices.Equal(kinds(r.Events), []string{"decision"}) {
			t.Fatalf("report %d: err %v events %v", i, r.Err, kinds(r.Events))
		}
	}
	// A retried report changes nothing.
	if r := h.apply(manager.OpReport, 0, &manager.Report{Node: "n1", ID: "4", Decision: []byte(`{}`)}); r.Err != nil || len(r.Events) != 0 {
		t.Fatalf("retry: err %v events %v, want none", r.Err, r.Events)
	}
	ids := func(rs []manager.Report) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		node  string
		limit int
		want  []string
	}{
		{"n1", 0, []string{"2", "3", "4"}},
		{"n1", 2, []string{"3", "4"}},
		{"n1", 9, []string{"2", "3", "4"}},
		{"n2", 0, nil},
	}
	for _, tt := range tests {
		if got := ids(h.f.Reports(tt.node, tt.limit)); !slices.Equal(got, tt.want) {
			t.Errorf("Reports(%s, %d) = %v, want %v", tt.node, tt.limit, got, tt.want)
		}
	}
	if got := string(h.f.Reports("n1", 1)[0].Decision); got != `{"i":4}` {
		t.Errorf("decision %s", got)
	}
}

func TestHistory(t *testing.T) {
	h := newHarness(t)
	h.f.maxEvents = 10
	for i := range 20 {
		h.apply(manager.OpReport, 0, &manager.Report{Node: "n1", ID: fmt.Sprint(i)})
	}
	all := h.f.History(0, 0)
	if len(all) != 10 || all[0].Index != 11 || all[9].Index != 20 {
		t.Fatalf("kept %d events from %d, want 10 from 11", len(all), all[0].Index)
	}
	tests := []struct {
		from       uint64
		limit      int
		first, len int
	}{
		{0, 0, 11, 10},
		{15, 0, 15, 6},
		{15, 2, 15, 2},
		{20, 5, 20, 1},
		{21, 0, 0, 0},
	}
	for _, tt := range tests {
		got := h.f.History(tt.from, tt.limit)
		if len(got) != tt.len || (tt.len > 0 && got[0].Index != uint64(tt.first)) {
			t.Errorf("History(%d, %d): %d events, want %d from %d", tt.from, tt.limit, len(got), tt.len, tt.first)
		}
	}
	// Callers cannot change the history through what they are given.
	h.apply(manager.OpAcquire, 0, acq("n1", "r1", "q"))
	h.f.History(21, 0)[0].Grant.State = manager.Released
	if g := h.f.History(21, 0)[0].Grant; g.State != manager.Held {
		t.Fatalf("history changed through a returned event: %s", g.State)
	}
}

func TestForgetsOldReleasedGrants(t *testing.T) {
	h := newHarness(t)
	h.f.maxReleased = 2
	for i := range 4 {
		r := h.apply(manager.OpAcquire, 0, acq("n1", "r1", fmt.Sprint(i)))
		h.apply(manager.OpRelease, 0, &manager.Release{GrantID: r.Grant.ID, Token: r.Grant.Token})
	}
	for id, want := range map[string]bool{"g-1": false, "g-2": false, "g-3": true, "g-4": true} {
		if _, ok := h.f.Grant(id); ok != want {
			t.Errorf("Grant(%s) found %v, want %v", id, ok, want)
		}
	}
	// A forgotten request is a new one.
	if r := h.apply(manager.OpAcquire, 0, acq("n1", "r1", "0")); r.Err != nil || r.Grant.Token != 5 {
		t.Fatalf("acquire of forgotten request: %+v %v", r.Grant, r.Err)
	}
}

// A time near the end of what JSON can hold would make a grant whose expiry
// cannot be written, and every snapshot after it fail.
func TestFarFutureTimeRefused(t *testing.T) {
	h := newHarness(t)
	at := time.Date(9999, 12, 31, 23, 30, 0, 0, time.UTC)
	r := h.applyRaw(entry(t, manager.OpAcquire, at, acq("n1", "r1", "q")))
	wantErr(t, r.Err, manager.ErrBadRequest)
	snapshotBytes(t, h.f)
}
