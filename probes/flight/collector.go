package flight

import "github.com/prometheus/client_golang/prometheus"

var (
	eventsTotalDesc = prometheus.NewDesc("nerve_flight_events_total",
		"Outliers the flight recorder received, by signal.",
		[]string{"signal"}, nil)
	droppedDesc = prometheus.NewDesc("nerve_flight_dropped_total",
		"Outliers lost before or after reaching the flight recorder: rate_limited by the probe's per-CPU limit in the kernel, lost when the BPF ring buffer was full, ring_full when evicted from a full recorder ring to make room for a newer one. Events older than flight.max_age are let go without being counted.",
		[]string{"signal", "reason"}, nil)
	heldDesc = prometheus.NewDesc("nerve_flight_events",
		"Outliers the flight recorder holds now, by signal; at most flight.max_events each.",
		[]string{"signal"}, nil)
)

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsTotalDesc
	ch <- droppedDesc
	ch <- heldDesc
}

// Collect implements prometheus.Collector: the counts as they are now,
// with each probe's drops read at the scrape.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	counts := r.Counts()
	for _, s := range Signals {
		c, sig := counts[s], string(s)
		ch <- prometheus.MustNewConstMetric(eventsTotalDesc, prometheus.CounterValue, float64(c.Total), sig)
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(c.Held), sig)
		for _, d := range []struct {
			reason string
			n      uint64
		}{{"rate_limited", c.RateLimited}, {"lost", c.Lost}, {"ring_full", c.RingFull}} {
			ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(d.n), sig, d.reason)
		}
	}
}
