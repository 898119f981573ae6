package blockio

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nervehq/nerve/probes/histogram"
)

// recorded is a snapshot as a slow loop device under light load would give:
// reads at in-flight 0 near 20 ms, a few deeper, one write error.
func recorded() *Snapshot {
	d := DeviceStats{Name: "loop3", Dev: 7<<20 | 3, Inflight: 2}
	r := &d.Ops[OpRead]
	for _, ns := range []uint64{20e6, 20e6, 21e6, 1 << 20} { // 1<<20 sits on a bucket edge
		r.Service[Inflight0].Counts[histogram.Bucket(ns)]++
		r.Service[Inflight0].SumNs += ns
		r.Requests++
	}
	r.Service[Inflight4to15].Counts[histogram.Bucket(40e6)]++
	r.Service[Inflight4to15].SumNs += 40e6
	r.Requests++
	for _, ns := range []uint64{1500, 3e6} {
		r.Queue.Counts[histogram.Bucket(ns)]++
		r.Queue.SumNs += ns
	}
	w := &d.Ops[OpWrite]
	w.Requests, w.Errors, w.QueueUnknown = 1, 1, 1
	w.Service[Inflight1to3].Counts[histogram.Bucket(5e6)]++
	w.Service[Inflight1to3].SumNs += 5e6
	return &Snapshot{
		Devices: []DeviceStats{d},
		Drops:   map[string]uint64{"completion_without_issue": 3, "request_map_full": 0},
	}
}

func TestCollectorGolden(t *testing.T) {
	c := &collector{
		perOctave: 1,
		mode:      ModeBTF,
		tagWaits:  true,
		snapshot:  func() (*Snapshot, error) { return recorded(), nil },
		maps: func() []mapFill {
			return []mapFill{{"block_requests", 12, 4096}, {"block_devices", 1, 64}}
		},
	}
	f, err := os.Open("testdata/collector.metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(c, f); err != nil {
		t.Error(err)
	}
}

func TestCollectorError(t *testing.T) {
	c := &collector{perOctave: 2, snapshot: func() (*Snapshot, error) { return nil, errors.New("map gone") }, maps: func() []mapFill { return nil }}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("Gather error = %v, want one naming the snapshot failure", err)
	}
}

func TestCollectorSeriesBounded(t *testing.T) {
	c := &collector{perOctave: 4, snapshot: func() (*Snapshot, error) { return recorded(), nil }, maps: func() []mapFill { return nil }}
	// Only the 3 (op, inflight) pairs that saw requests get a service histogram.
	n := testutil.CollectAndCount(c, "nerve_block_service_seconds")
	if n != 3 {
		t.Errorf("service series = %d, want 3", n)
	}
	if lint, err := testutil.CollectAndLint(c); err != nil || len(lint) > 0 {
		t.Errorf("lint: %v %v", err, lint)
	}
}
