package histogram

import (
	"math"
	"math/bits"
	"testing"
)

func TestBucketEdges(t *testing.T) {
	// Every bound is inclusive: the bound itself is in bucket i, one more is in i+1.
	for i := 0; i < Buckets-1; i++ {
		up := uint64(UpperNs(i))
		if got := Bucket(up); got != i {
			t.Errorf("Bucket(%d) = %d, want %d (upper bound of %d)", up, got, i, i)
		}
		if got := Bucket(up + 1); got != i+1 {
			t.Errorf("Bucket(%d) = %d, want %d", up+1, got, i+1)
		}
	}
}

func TestBucketTable(t *testing.T) {
	tests := []struct {
		ns   uint64
		want int
	}{
		{0, 0}, {1, 0}, {1024, 0}, {1025, 1}, {1280, 1}, {1281, 2},
		{2048, 4}, {2049, 5}, {1 << 36, Buckets - 2}, {1<<36 + 1, Buckets - 1},
		{math.MaxUint64, Buckets - 1},
	}
	for _, tt := range tests {
		if got := Bucket(tt.ns); got != tt.want {
			t.Errorf("Bucket(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
}

func TestLeadingZeros(t *testing.T) {
	for _, v := range []uint64{1, 2, 3, 1023, 1 << 40, math.MaxUint64} {
		if got, want := leadingZeros(v), bits.LeadingZeros64(v); got != want {
			t.Errorf("leadingZeros(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestBucketWidth(t *testing.T) {
	// No kernel bucket (but the first and the overflow) is wider than 25% of its lower bound.
	for i := 1; i < Buckets-1; i++ {
		lo, hi := LowerNs(i), UpperNs(i)
		if w := (hi - lo) / lo; w > 0.25+1e-12 {
			t.Errorf("bucket %d (%g, %g] is %.0f%% wide", i, lo, hi, w*100)
		}
	}
}

func TestPrometheusLeSemantics(t *testing.T) {
	var h Hist
	// One value exactly on the 2^20 ns edge, one just above it.
	for _, v := range []uint64{1 << 20, 1<<20 + 1} {
		h.Counts[Bucket(v)]++
		h.SumNs += v
	}
	for _, per := range []int{1, 2, 4} {
		b, n, sum, err := h.Prometheus(per)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("per %d: count = %d, want 2", per, n)
		}
		if want := float64(2<<20+1) / 1e9; math.Abs(sum-want) > 1e-15 {
			t.Errorf("per %d: sum = %g, want %g", per, sum, want)
		}
		if got := b[float64(1<<20)/1e9]; got != 1 {
			t.Errorf("per %d: le=2^20ns holds %d, want 1 (the value on the edge)", per, got)
		}
		if got, want := len(b), (MaxShift-MinShift)*per+1; got != want {
			t.Errorf("per %d: %d buckets, want %d", per, got, want)
		}
		// Cumulative and monotonic.
		var last uint64
		for i := 0; i < Buckets-1; i++ {
			if c, ok := b[UpperNs(i)/1e9]; ok {
				if c < last {
					t.Errorf("per %d: bucket le=%g count %d below previous %d", per, UpperNs(i), c, last)
				}
				last = c
			}
		}
	}
	if _, _, _, err := h.Prometheus(3); err == nil {
		t.Error("Prometheus(3) gave no error")
	}
}

func TestQuantile(t *testing.T) {
	var h Hist
	if !math.IsNaN(h.Quantile(0.5)) {
		t.Error("quantile of empty histogram is not NaN")
	}
	// 100 values of 20 ms land in one bucket; the median must be inside it.
	for i := 0; i < 100; i++ {
		h.Counts[Bucket(20e6)]++
	}
	got := h.Quantile(0.5)
	b := Bucket(20e6)
	if got <= LowerNs(b) || got > UpperNs(b) {
		t.Errorf("median %g outside bucket (%g, %g]", got, LowerNs(b), UpperNs(b))
	}
	if math.Abs(got-20e6)/20e6 > 0.125 {
		t.Errorf("median %g more than 12.5%% from 20ms", got)
	}
}
