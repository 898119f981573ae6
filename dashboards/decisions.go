package dashboards

// actionsNew counts decisions per interval, including the first of each
// (action, result) the agent could not create at 0 ahead: that series is
// born with the value 1, and increase() needs two samples, so the `unless
// ... offset` half adds the newborn ones.
const actionsNew = `sum by (action, result) (increase(nerve_actions_total{instance=~"$instance"}[$__rate_interval])) > 0
or
sum by (action, result) (nerve_actions_total{instance=~"$instance"} > 0 unless nerve_actions_total{instance=~"$instance"} offset $__rate_interval)`

func decisions() Dashboard {
	return Dashboard{
		File:  "decisions.json",
		UID:   "nerve-decisions",
		Title: "nerve / decisions",
		Description: "What nerve decided: diagnoses over time and the actions of the ladder (done, failed, advised, refused, " +
			"no action left). The evidence of each decision is on the node: nerve status, or GET /decisions.",
		Vars:        []Var{instanceVar},
		Annotations: []Annotation{diagnosisAnnotation, actionAnnotation},
		Rows: []Row{
			{Panels: []Panel{
				{
					Kind: StateTimeline, Title: "Diagnoses by agent", W: 24, H: 7, States: diagnosisStates,
					Description: "Whether each diagnosis holds on each agent (on at least one of its subjects).",
					Targets:     []Target{{Expr: `max by (instance, kind) (nerve_diagnosis{instance=~"$instance"})`, Legend: "{{instance}} {{kind}}"}},
				},
				{
					Kind: TimeSeries, Title: "Agents with a diagnosis", Unit: "short", W: 12, Stack: true,
					Description: "How many of the selected agents hold each diagnosis: one node is a node problem, many at once is a cluster problem.",
					Targets:     []Target{{Expr: `sum by (kind) (nerve_diagnosis{instance=~"$instance"})`, Legend: "{{kind}}"}},
				},
				{
					Kind: TimeSeries, Title: "Decisions by action and result", Unit: "short", W: 12, Bars: true, Stack: true,
					Description: "Decisions per interval. failed: the action ran and erred; no action left: the ladder has nothing " +
						"that can clear the diagnosis (call a human); refused: a guard or the rack lock said no; advised/observed: " +
						"the rung's mode kept the action from running.",
					Targets: []Target{{Expr: actionsNew, Legend: "{{action}}: {{result}}"}},
				},
			}},
			{Title: "Now", Panels: []Panel{
				{
					Kind: Table, Title: "Decisions since each agent started", W: 12,
					Description: "nerve_actions_total as it stands: decisions by action and result since the agent last started.",
					Targets:     []Target{{Expr: `sum by (instance, action, result) (nerve_actions_total{instance=~"$instance"})`}},
				},
				{
					Kind: Table, Title: "Action ladder modes", W: 12,
					Description: "The mode in force for each rung: observe (diagnose only), advise (decide and explain), enforce (act). " +
						"1 live control, 2 restart a sidecar, 3 restart the database, 4 transfer data and exit, 5 exit without transfer.",
					Targets: []Target{{Expr: `max by (instance, rung, mode) (nerve_action_mode{instance=~"$instance"} == 1)`}},
				},
			}},
		},
	}
}
