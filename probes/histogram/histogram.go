// Package histogram mirrors, in Go, the log-linear latency buckets that
// nerve's BPF programs fill (bpf/include/nerve_hist.h), and turns them into
// Prometheus histograms.
//
// The kernel side keeps 4 linear sub-buckets per power of two from 1.024 us to
// 68.7 s, upper-inclusive. Prometheus gets a coarser view (1, 2 or 4 buckets
// per power of two) whose every edge is also a kernel edge, so no count is
// ever split between two exported buckets and `le` keeps its meaning: the
// count of values less than or equal to the bound.
package histogram

import (
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
)

// Layout of the kernel buckets; must match nerve_hist.h.
const (
	MinShift = 10
	MaxShift = 36
	SubShift = 2
	Sub      = 1 << SubShift
	Buckets  = 2 + (MaxShift-MinShift)*Sub
)

// Bucket returns the kernel bucket of a value in nanoseconds, exactly as the
// BPF programs compute it.
func Bucket(ns uint64) int {
	if ns <= 1<<MinShift {
		return 0
	}
	u := ns - 1
	m := 63 - leadingZeros(u)
	if m >= MaxShift {
		return Buckets - 1
	}
	return 1 + (m-MinShift)*Sub + int((u>>(m-SubShift))&(Sub-1))
}

func leadingZeros(v uint64) int {
	n := 0
	for i := 63; i >= 0 && v&(1<<uint(i)) == 0; i-- {
		n++
	}
	return n
}

// UpperNs is the inclusive upper bound of kernel bucket i in nanoseconds;
// +Inf for the overflow bucket.
func UpperNs(i int) float64 {
	switch {
	case i <= 0:
		return 1 << MinShift
	case i >= Buckets-1:
		return math.Inf(1)
	}
	k := (i - 1) / Sub
	j := (i - 1) % Sub
	m := MinShift + k
	return float64(uint64(1)<<m + uint64(j+1)<<(m-SubShift))
}

// LowerNs is the exclusive lower bound of kernel bucket i in nanoseconds.
func LowerNs(i int) float64 {
	if i <= 0 {
		return 0
	}
	return UpperNs(i - 1)
}

// ValidPerOctave reports whether n exported buckets per power of two is supported.
func ValidPerOctave(n int) bool { return n == 1 || n == 2 || n == 4 }

// Hist is one latency distribution read from the kernel.
type Hist struct {
	Counts [Buckets]uint64
	SumNs  uint64
}

// Count is the number of observations.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Add adds another distribution into h.
func (h *Hist) Add(o *Hist) {
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
	}
	h.SumNs += o.SumNs
}

// Quantile estimates the q-quantile in nanoseconds by linear interpolation
// inside the kernel bucket that holds it, as Prometheus' histogram_quantile
// does. NaN when empty.
func (h *Hist) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo, hi := LowerNs(i), UpperNs(i)
			if math.IsInf(hi, 1) {
				return lo
			}
			return lo + (hi-lo)*(rank-seen)/float64(c)
		}
		seen += float64(c)
	}
	return UpperNs(Buckets - 2)
}

// Prometheus converts the distribution to a classic Prometheus histogram in
// seconds with perOctave buckets per power of two: cumulative counts keyed by
// the upper bound, the total count and the sum.
func (h *Hist) Prometheus(perOctave int) (map[float64]uint64, uint64, float64, error) {
	if !ValidPerOctave(perOctave) {
		return nil, 0, 0, fmt.Errorf("buckets per octave must be 1, 2 or 4, got %d", perOctave)
	}
	step := Sub / perOctave
	out := make(map[float64]uint64, (MaxShift-MinShift)*perOctave+1)
	var cum uint64
	for i := 0; i < Buckets-1; i++ {
		cum += h.Counts[i]
		if i%step == 0 {
			out[UpperNs(i)/1e9] = cum
		}
	}
	cum += h.Counts[Buckets-1]
	return out, cum, float64(h.SumNs) / 1e9, nil
}

// ReadPerCPU reads one key of a per-CPU map whose value is a struct
// nerve_hist (bpf/include/nerve_hist.h) and sums the CPUs.
func ReadPerCPU(m *ebpf.Map, key uint32) (Hist, error) {
	var perCPU []Hist
	if err := m.Lookup(key, &perCPU); err != nil {
		return Hist{}, err
	}
	var h Hist
	for i := range perCPU {
		h.Add(&perCPU[i])
	}
	return h, nil
}

// Metric is the distribution as a constant Prometheus histogram of desc with
// perOctave buckets per power of two; an invalid metric carrying the error
// when that cannot be made.
func (h *Hist) Metric(desc *prometheus.Desc, perOctave int, labels ...string) prometheus.Metric {
	buckets, count, sum, err := h.Prometheus(perOctave)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	m, err := prometheus.NewConstHistogram(desc, count, sum, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}
