package manager_test

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/nervehq/nerve/manager"
)

// TestLockModel proves the checker can fail: histories a correct manager
// could not produce are refused, and the ones it could are accepted.
func TestLockModel(t *testing.T) {
	acq := func(c int, node, rack, req string, call, ret int64, res, grant string, token uint64) rawOp {
		return rawOp{client: c, in: lockInput{Kind: opAcquire, Node: node, Rack: rack, Limit: 1, Req: req},
			out: lockOutput{Result: res, Grant: grant, Token: token}, call: call, ret: ret}
	}
	rel := func(c int, grant string, call, ret int64, res string) rawOp {
		return rawOp{client: c, in: lockInput{Kind: opRelease, Grant: grant}, out: lockOutput{Result: res}, call: call, ret: ret}
	}
	val := func(c int, grant string, call, ret int64, res string) rawOp {
		return rawOp{client: c, in: lockInput{Kind: opValidate, Grant: grant}, out: lockOutput{Result: res}, call: call, ret: ret}
	}
	tests := []struct {
		name string
		ops  []rawOp
		evs  []manager.Event
		want bool
	}{
		{"one rack after the other", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			rel(0, "g-1", 20, 30, resOK),
			acq(1, "b1", "b", "r1", 40, 50, resOK, "g-2", 2),
		}, nil, true},
		{"two racks at once", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			acq(1, "b1", "b", "r1", 20, 30, resOK, "g-2", 2),
		}, nil, false},
		{"refused while free", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			rel(0, "g-1", 20, 30, resOK),
			acq(1, "b1", "b", "r1", 40, 50, resBusy, "", 0),
		}, nil, false},
		{"refused while concurrent with the release", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			rel(0, "g-1", 20, 30, resOK),
			acq(1, "b1", "b", "r1", 25, 50, resBusy, "", 0),
		}, nil, true},
		{"token going down", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-2", 2),
			rel(0, "g-2", 20, 30, resOK),
			acq(1, "b1", "b", "r1", 40, 50, resOK, "g-1", 1),
		}, nil, false},
		{"validated after release", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			rel(0, "g-1", 20, 30, resOK),
			val(0, "g-1", 40, 50, resOK),
		}, nil, false},
		{"validated after turning suspect", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resOK, "g-1", 1),
			val(0, "g-1", 20, 30, resStale),
			val(0, "g-1", 40, 50, resOK),
		}, nil, false},
		{"unknown acquire settled by its repeat", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resUnknown, "", 0),
			acq(1, "b1", "b", "r1", 15, 20, resBusy, "", 0),
			acq(0, "a1", "a", "r1", 30, 40, resOK, "g-1", 1),
		}, nil, true},
		{"unknown acquire that the history shows applied blocks other racks", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resUnknown, "", 0),
			acq(1, "b1", "b", "r1", 20, 30, resOK, "g-2", 2),
		}, []manager.Event{{Index: 5, Kind: "grant", Grant: &manager.Grant{ID: "g-1", Token: 1, Node: "a1", RequestID: "r1"}}}, false},
		{"unknown acquire never applied", []rawOp{
			acq(0, "a1", "a", "r1", 0, 10, resUnknown, "", 0),
			acq(1, "b1", "b", "r1", 20, 30, resOK, "g-2", 2),
		}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist, _ := history(tt.ops, tt.evs)
			got := porcupine.CheckOperations(lockModel, hist)
			if got != tt.want {
				t.Errorf("linearizable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckEvents(t *testing.T) {
	g := func(id string, token uint64, rack string) *manager.Grant {
		return &manager.Grant{ID: id, Token: token, Cluster: "c", Rack: rack, Node: rack + "1"}
	}
	tests := []struct {
		name    string
		evs     []manager.Event
		wantErr bool
	}{
		{"in turn", []manager.Event{
			{Index: 3, Kind: "grant", Grant: g("g-1", 1, "a")},
			{Index: 4, Kind: "suspect", Grant: g("g-1", 1, "a")},
			{Index: 5, Kind: "refuse"},
			{Index: 6, Kind: "release", Grant: g("g-1", 1, "a")},
			{Index: 7, Kind: "grant", Grant: g("g-2", 2, "b")},
		}, false},
		{"suspect still holds", []manager.Event{
			{Index: 3, Kind: "grant", Grant: g("g-1", 1, "a")},
			{Index: 4, Kind: "suspect", Grant: g("g-1", 1, "a")},
			{Index: 7, Kind: "grant", Grant: g("g-2", 2, "b")},
		}, true},
		{"token not rising", []manager.Event{
			{Index: 3, Kind: "grant", Grant: g("g-2", 2, "a")},
			{Index: 6, Kind: "release", Grant: g("g-2", 2, "a")},
			{Index: 7, Kind: "grant", Grant: g("g-1", 1, "b")},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, _, errs := checkEvents(tt.evs)
			if got := len(errs) > 0; got != tt.wantErr {
				t.Errorf("errors %v, want errors: %v", errs, tt.wantErr)
			}
		})
	}
}

func TestCheckStops(t *testing.T) {
	ok := []stopPeriod{{"a1", "a", 0, 10}, {"a2", "a", 5, 15}, {"b1", "b", 20, 30}}
	if errs := checkStops(ok); len(errs) > 0 {
		t.Errorf("checkStops(%v) = %v, want none", ok, errs)
	}
	bad := []stopPeriod{{"a1", "a", 0, 10}, {"b1", "b", 9, 30}}
	if errs := checkStops(bad); len(errs) != 1 {
		t.Errorf("checkStops(%v) = %v, want one", bad, errs)
	}
}
