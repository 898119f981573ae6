package benchkit

import (
	"io"
	"slices"
	"text/tabwriter"
)

// NewTable returns the writer the benchmarks print their tables with:
// columns right-aligned, two spaces apart. Every cell, the last one too,
// ends with a tab. Call Flush when the table is done.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

// Pick maps each result to one figure, for Median.
func Pick[T any](rs []T, f func(T) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

// Median is the middle of v (the mean of the two middle values when v has an
// even length), or 0 when v is empty. v is not changed.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
