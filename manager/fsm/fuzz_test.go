package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nervehq/nerve/manager"
)

func seeds(f *testing.F) [][]byte {
	cmds := []struct {
		op   manager.Op
		body any
	}{
		{manager.OpAcquire, acq("n1", "r1", "q")},
		{manager.OpAcquire, acq("n2", "r2", "q")},
		{manager.OpRenew, &manager.Renew{GrantID: "g-1", Token: 1}},
		{manager.OpCheckpoint, &manager.Checkpoint{GrantID: "g-1", Token: 1, Step: "s"}},
		{manager.OpExpire, nil},
		{manager.OpHealthy, &manager.Healthy{Cluster: "c1", Node: "n1"}},
		{manager.OpRelease, &manager.Release{GrantID: "g-1", Token: 1}},
		{manager.OpForceRelease, &manager.ForceRelease{GrantID: "g-1", Reason: "r", By: "b"}},
		{manager.OpSetGoals, &manager.SetGoals{Level: manager.LevelRack, Key: "r1", Document: "a: {b: 1}\n"}},
		{manager.OpReport, &manager.Report{Node: "n1", ID: "1", Decision: []byte(`{}`)}},
		{manager.OpRackConfig, &manager.RackConfig{Cluster: "c1", Rack: "r1", MaxHolders: 2}},
	}
	var out [][]byte
	for i, c := range cmds {
		out = append(out, entry(f, c.op, t0.Add(time.Duration(i)*time.Minute), c.body))
	}
	out = append(out, []byte(""), []byte("{"), []byte(`{"op":"acquire","at":"2025-01-01T00:00:00Z","body":{"lease":-1}}`))
	return out
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if !errors.Is(err, manager.ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		// What decodes encodes, and decodes again to the same command.
		e, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode of a decoded command: %v", err)
		}
		c2, err := Decode(e)
		if err != nil || c2.Op != c.Op || !c2.At.Equal(c.At) {
			t.Fatalf("round trip: %+v %v, want %+v", c2, err, c)
		}
	})
}

// FuzzApply applies the input, split on newlines, as log entries: no panic,
// a *Result every time, errors from the sentinel set, invariants kept, and
// a snapshot restores to the same state.
func FuzzApply(f *testing.F) {
	s := seeds(f)
	f.Add(bytes.Join(s, []byte("\n")))
	for _, b := range s {
		f.Add(b)
	}
	sentinels := []error{manager.ErrBadRequest, manager.ErrRackBusy, manager.ErrRackFull, manager.ErrStaleToken, manager.ErrNotFound}
	f.Fuzz(func(t *testing.T, in []byte) {
		fsm := New()
		for i, data := range bytes.Split(in, []byte("\n")) {
			r, ok := fsm.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}).(*Result)
			if !ok || r == nil {
				t.Fatalf("entry %d: no *Result", i)
			}
			if r.Err != nil {
				known := false
				for _, e := range sentinels {
					known = known || errors.Is(r.Err, e)
				}
				if !known {
					t.Fatalf("entry %d: error %v wraps no sentinel", i, r.Err)
				}
			}
			checkInvariants(t, fsm)
		}
		if r, ok := fsm.Apply(nil).(*Result); !ok || !errors.Is(r.Err, manager.ErrBadRequest) {
			t.Fatal("Apply(nil) did not refuse")
		}
		sameState(t, fsm, restored(t, fsm))
	})
}
