package dashboards

func manager() Dashboard {
	return Dashboard{
		File:  "manager.json",
		UID:   "nerve-manager",
		Title: "nerve / manager",
		Description: "The rack-lock manager's replicas: the raft leader, rack-lock grants, lapsed leases and API latency. " +
			"Every replica reports the replicated state; the panels take the largest figure so a lagging follower does not hide it.",
		Vars: []Var{{
			Name: "instance", Label: "Replica",
			Description: "Manager replicas (instances with nerve_manager_leader).",
			Query:       `label_values(nerve_manager_leader, instance)`,
		}},
		Rows: []Row{
			{Panels: []Panel{
				{
					Kind: Stat, Title: "Leaders", W: 4, H: 5,
					Description: "Replicas that are raft leader now: want 1. 0 means no rack lock can be taken or renewed.",
					Goals:       []Goal{{Value: 2, Color: "orange"}},
					States:      []State{{"0", "no leader", "red"}, {"1", "1", "green"}},
					Targets:     []Target{{Expr: `sum(nerve_manager_leader{instance=~"$instance"})`}},
				},
				{
					Kind: StateTimeline, Title: "Leader", W: 20, H: 5,
					States:      []State{{"0", "follower", "transparent"}, {"1", "leader", "green"}},
					Description: "Which replica led when: a change is a leader election.",
					Targets:     []Target{{Expr: `nerve_manager_leader{instance=~"$instance"}`, Legend: "{{instance}}"}},
				},
			}},
			{Title: "Rack locks by rack", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "Grants by rack", Unit: "short", W: 24, Stack: true,
					Description: "Which rack of which cluster is locked, and whether held or suspect: at most one rack of a cluster " +
						"at a time. A rack with no grant shows nothing.",
					Targets: []Target{{
						Expr:   `max by (cluster, rack, state) (nerve_manager_rack_grants{instance=~"$instance"})`,
						Legend: "{{cluster}}/{{rack}} {{state}}",
					}},
				},
			}},
			{Title: "Rack locks", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "Grants by state", Unit: "short", W: 8, Stack: true,
					Description: "Rack-lock grants: held (an action on its node holds the rack), suspect (its lease lapsed while the " +
						"node was unhealthy: the rack stays locked until the node reports healthy or an operator force-releases it). " +
						"nerve lock list shows the rack and node of each.",
					Targets: []Target{{Expr: `max by (state) (nerve_manager_grants{instance=~"$instance"})`, Legend: "{{state}}"}},
				},
				{
					Kind: TimeSeries, Title: "Lease expiries", Unit: "short", W: 8, Bars: true,
					Description: "Grants the leader turned suspect because their lease lapsed without a renewal.",
					Targets:     []Target{{Expr: `sum(increase(nerve_manager_lease_expiries_total{instance=~"$instance"}[$__rate_interval]))`, Legend: "expiries"}},
				},
				{
					Kind: TimeSeries, Title: "Replication lag", Unit: "short", W: 8,
					Description: "Raft entries each replica has yet to apply, against the furthest replica. Applied index growth is every write: grants, renewals, goals, decisions.",
					Targets: []Target{{
						Expr:   `scalar(max(nerve_manager_applied_index{instance=~"$instance"})) - nerve_manager_applied_index{instance=~"$instance"}`,
						Legend: "{{instance}}",
					}},
				},
			}},
			{Title: "API", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "API latency p99 by route", Unit: "s", W: 8,
					Description: "Time to answer an API request. Writes (acquire, renew, release) wait for a raft commit on a quorum; a follower forwards them to the leader.",
					Targets: []Target{{
						Expr:   `histogram_quantile(0.99, sum by (route, le) (rate(nerve_manager_api_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
						Legend: "{{route}}",
					}},
				},
				{
					Kind: Heatmap, Title: "API latency", Unit: "s", W: 8,
					Description: "Every API request of the selected replicas.",
					Targets:     []Target{{Expr: `sum by (le) (rate(nerve_manager_api_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval]))`}},
				},
				{
					Kind: TimeSeries, Title: "API requests by route and code", Unit: "reqps", W: 8, Stack: true,
					Description: "409 on acquire is another rack holding the lock, as designed; 5xx are the manager's own failures.",
					Targets: []Target{{
						Expr:   `sum by (route, code) (rate(nerve_manager_api_request_duration_seconds_count{instance=~"$instance"}[$__rate_interval]))`,
						Legend: "{{route}} {{code}}",
					}},
				},
			}},
		},
	}
}
