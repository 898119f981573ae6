package server

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/manager"
)

// metrics is the replica's collector. The gauges are read from raft and
// the state machine at scrape time.
type metrics struct {
	s *Server

	leader, appliedIndex, grants, rackGrants *prometheus.Desc
	leaseExpiries                            prometheus.Counter
	requestDuration                          *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	return &metrics{
		s: s,
		leader: prometheus.NewDesc("nerve_manager_leader",
			"1 when this replica is the raft leader, else 0.", nil, nil),
		appliedIndex: prometheus.NewDesc("nerve_manager_applied_index",
			"Index of the last raft entry applied to this replica's state machine.", nil, nil),
		grants: prometheus.NewDesc("nerve_manager_grants",
			"Rack-lock grants in this replica's state, by state (held, suspect).", []string{"state"}, nil),
		rackGrants: prometheus.NewDesc("nerve_manager_rack_grants",
			"Rack-lock grants in this replica's state, by the cluster and rack they lock and by state (held, suspect); "+
				"a rack with none has no series.", []string{"cluster", "rack", "state"}, nil),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nerve_manager_lease_expiries_total",
			Help: "Grants turned suspect by an expire this replica proposed as leader.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nerve_manager_api_request_duration_seconds",
			Help:    "Time to answer an HTTP API request, by route and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.leader
	ch <- m.appliedIndex
	ch <- m.grants
	ch <- m.rackGrants
	m.leaseExpiries.Describe(ch)
	m.requestDuration.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	leader := 0.0
	if r := m.s.started.Load(); r != nil && r.State() == raft.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(m.appliedIndex, prometheus.GaugeValue, float64(m.s.fsm.LastIndex()))
	type rackState struct {
		cluster, rack string
		state         manager.GrantState
	}
	counts := map[manager.GrantState]int{manager.Held: 0, manager.Suspect: 0}
	byRack := map[rackState]int{}
	for _, g := range m.s.fsm.Locks("") {
		counts[g.State]++
		byRack[rackState{g.Cluster, g.Rack, g.State}]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.grants, prometheus.GaugeValue, float64(n), string(state))
	}
	for k, n := range byRack {
		ch <- prometheus.MustNewConstMetric(m.rackGrants, prometheus.GaugeValue, float64(n), k.cluster, k.rack, string(k.state))
	}
	m.leaseExpiries.Collect(ch)
	m.requestDuration.Collect(ch)
}
