package preflight

import (
	"math"
	"slices"
	"time"
)

// Latencies summarises a set of measured latencies.
type Latencies struct {
	Count int
	P50   time.Duration
	P99   time.Duration
	Max   time.Duration
	Mean  time.Duration
}

// Summarise sorts ds in place and returns its summary; empty ds gives zeros.
func Summarise(ds []time.Duration) Latencies {
	if len(ds) == 0 {
		return Latencies{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latencies{
		Count: len(ds),
		P50:   Percentile(ds, 50),
		P99:   Percentile(ds, 99),
		Max:   ds[len(ds)-1],
		Mean:  sum / time.Duration(len(ds)),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value at least p percent of the values
// are less than or equal to. It never interpolates, so the figure is one
// that was measured, and a p99 over fewer than 100 values is the maximum:
// with few samples the goal is checked against the worst one, not against
// a value between two of them. Empty sorted gives 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// p/100*n in floating point can land a hair above an integer (0.29*100
	// is 28.999999999999996, 0.57*100 is 57.00000000000001); round to
	// nine digits first so an exact rank stays exact.
	rank := int(math.Ceil(math.Round(p/100*float64(n)*1e9) / 1e9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}
