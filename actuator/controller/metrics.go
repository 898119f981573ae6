package controller

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/actuator"
)

var (
	diagnosisDesc = prometheus.NewDesc("nerve_diagnosis",
		"Whether a diagnosis holds now (1) on at least one subject, or not (0).", []string{"kind"}, nil)
	actionsDesc = prometheus.NewDesc("nerve_actions_total",
		"Decisions by action and result: done, failed, refused, advised, observed, no action left. Each configured action's series exist from the start, at 0.",
		[]string{"action", "result"}, nil)
	modeDesc = prometheus.NewDesc("nerve_action_mode",
		"The mode of each rung of the action ladder: 1 for the mode in force.", []string{"rung", "mode"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Controller) Describe(ch chan<- *prometheus.Desc) {
	ch <- diagnosisDesc
	ch <- actionsDesc
	ch <- modeDesc
}

// Collect implements prometheus.Collector.
func (c *Controller) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range actuator.Kinds {
		v := 0.0
		if c.active[k] > 0 {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(diagnosisDesc, prometheus.GaugeValue, v, string(k))
	}
	for k, n := range c.results {
		ch <- prometheus.MustNewConstMetric(actionsDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	for r := actuator.LiveControl; r <= actuator.ExitWithoutTrans; r++ {
		ch <- prometheus.MustNewConstMetric(modeDesc, prometheus.GaugeValue, 1, fmt.Sprint(int(r)), string(c.ladder.Mode(r)))
	}
}
