package preflight

import (
	"testing"
	"time"
)

func ms(vs ...int) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

// seq returns 1ms, 2ms, ... n ms.
func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 99, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"one p50", ms(7), 50, 7 * time.Millisecond},
		// Under 100 samples, p99 is the worst one: no interpolation.
		{"ten p99", seq(10), 99, 10 * time.Millisecond},
		{"ten p50", seq(10), 50, 5 * time.Millisecond},
		{"ten p90", seq(10), 90, 9 * time.Millisecond},
		{"ten p91", seq(10), 91, 10 * time.Millisecond},
		{"hundred p99", seq(100), 99, 99 * time.Millisecond},
		{"hundred p100", seq(100), 100, 100 * time.Millisecond},
		{"thousand p99", seq(1000), 99, 990 * time.Millisecond},
		{"1001 p99", seq(1001), 99, 991 * time.Millisecond}, // rank ceil(990.99)
		// 0.29*100 is 28.999999999999996 in floating point; the rank is 29.
		{"float rank", seq(100), 29, 29 * time.Millisecond},
		{"p0 is the minimum", seq(10), 0, 1 * time.Millisecond},
		{"ties", ms(1, 5, 5, 5, 9), 50, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	// One slow request in a hundred is the p99; two are not hidden by it.
	ds := seq(100)
	ds[0], ds[99] = 100*time.Millisecond, 1*time.Millisecond // unsorted on purpose
	got := Summarise(ds)
	want := Latencies{Count: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond,
		Mean: 50500 * time.Microsecond}
	if got != want {
		t.Errorf("Summarise = %+v, want %+v", got, want)
	}
	if got := Summarise(nil); got != (Latencies{}) {
		t.Errorf("Summarise(nil) = %+v, want zeros", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{850 * time.Microsecond, "850µs"},
		{62300 * time.Microsecond, "62.3ms"},
		{time.Millisecond, "1.0ms"},
		{1250 * time.Millisecond, "1.25s"},
	} {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
