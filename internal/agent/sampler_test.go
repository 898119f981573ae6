package agent

import (
	"math"
	"testing"

	"github.com/nervehq/nerve/probes/blockio"
	"github.com/nervehq/nerve/probes/histogram"
)

func TestDeviceWindow(t *testing.T) {
	var prev, cur blockio.DeviceStats
	// Before: 100 idle reads at 1 ms. After: 10 more idle reads at 25 ms
	// and 90 reads queued 50 ms at depth 16.
	prev.Ops[blockio.OpRead].Service[blockio.Inflight0].Counts[histogram.Bucket(1e6)] = 100
	prev.Ops[blockio.OpRead].Requests = 100
	cur = prev
	cur.Ops[blockio.OpRead].Service[blockio.Inflight0].Counts[histogram.Bucket(25e6)] += 10
	cur.Ops[blockio.OpRead].Service[blockio.Inflight16Plus].Counts[histogram.Bucket(2e6)] += 90
	cur.Ops[blockio.OpRead].Queue.Counts[histogram.Bucket(50e6)] += 90
	cur.Ops[blockio.OpRead].Requests += 100

	w := deviceWindow(prev, cur, 10)
	if w.ServiceIdleN != 10 {
		t.Errorf("idle requests in window = %d, want 10 (the earlier 100 are history)", w.ServiceIdleN)
	}
	if w.ServiceIdleP99 < 0.02 || w.ServiceIdleP99 > 0.03 {
		t.Errorf("idle p99 = %gs, want about 25ms", w.ServiceIdleP99)
	}
	if w.QueueP99 < 0.04 || w.QueueP99 > 0.06 {
		t.Errorf("queue p99 = %gs, want about 50ms", w.QueueP99)
	}
	if w.IOPS != 10 {
		t.Errorf("IOPS = %g, want 10", w.IOPS)
	}
}

func TestSubResetGivesEmptyWindow(t *testing.T) {
	var a, b histogram.Hist
	a.Counts[3], b.Counts[3] = 1, 5 // went backwards: the slot was reused
	w := sub(a, b)
	if w.Count() != 0 || !math.IsNaN(w.Quantile(0.99)) {
		t.Errorf("window after a reset = %d observations", w.Count())
	}
}
