package dashboards

func self() Dashboard {
	return Dashboard{
		File:  "nerve-self.json",
		UID:   "nerve-self",
		Title: "nerve / agent self-monitoring",
		Description: "Is nerve itself healthy and cheap: probes attached, events lost, what each BPF program costs per event " +
			"(with --bpf-stats), map fill, and the agent's CPU and memory.",
		Vars: []Var{
			instanceVar,
			{Name: "probe", Label: "Probe", Description: "Enabled probes.",
				Query: `label_values(nerve_probe_attached{instance=~"$instance"}, probe)`},
		},
		Annotations: []Annotation{{
			Name: "Agent restarts", Color: "blue", StepSeconds: 60,
			Expr:  `changes(process_start_time_seconds{instance=~"$instance"}[2m]) > 0`,
			Title: "agent restarted", Text: "{{instance}}", Tags: "instance",
		}},
		Rows: []Row{
			{Panels: []Panel{
				{
					Kind: StateTimeline, Title: "Probes attached", W: 12, H: 6,
					States: []State{{"0", "not attached", "red"}, {"1", "attached", "green"}},
					Description: "1 when the probe's BPF programs run; 0 when it failed to attach or runs on a fallback without BPF " +
						"(the agent's log says why). A probe that is not attached diagnoses nothing.",
					Targets: []Target{{Expr: `nerve_probe_attached{instance=~"$instance", probe=~"$probe"}`, Legend: "{{instance}} {{probe}}"}},
				},
				{
					Kind: StateTimeline, Title: "Scraped", W: 6, H: 6,
					States:      []State{{"0", "down", "red"}, {"1", "up", "green"}},
					Description: "Whether Prometheus could scrape the agent.",
					Targets:     []Target{{Expr: `up{instance=~"$instance"}`, Legend: "{{instance}}"}},
				},
				{
					Kind: Table, Title: "Block probe mode", W: 6, H: 6,
					Description: "How the block I/O probe runs: tp_btf, or raw_tp on older kernels; whether queue time includes waits for a driver tag (Linux 5.11 and later).",
					Targets:     []Target{{Expr: `max by (instance, mode, tag_waits) (nerve_block_probe_info{instance=~"$instance"})`}},
				},
			}},
			{Title: "Lost events", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "Drops by probe and reason", Unit: "ops", W: 6,
					Description: "Events the kernel side lost, per second: a full map, a completion without its issue. Any is a gap in the figures.",
					Targets: []Target{{
						Expr:   `sum by (instance, probe, reason) (rate(nerve_probe_drops_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))`,
						Legend: "{{instance}} {{probe}} {{reason}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "BPF recursion misses", Unit: "ops", W: 6,
					Description: "Times the kernel skipped a program because another BPF program ran on that CPU: each is a lost event (with --bpf-stats).",
					Targets: []Target{{
						Expr:   `sum by (instance, probe, program) (rate(nerve_bpf_program_recursion_misses_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))`,
						Legend: "{{instance}} {{program}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "Block requests without a queue time", Unit: "reqps", W: 6,
					Description: "Requests the kernel gave no start time for (no I/O scheduler, I/O statistics off) and that did not wait " +
						"for a tag: their queue time is not in the queue-time histogram.",
					Targets: []Target{{
						Expr:   `sum by (instance, device) (rate(nerve_block_queue_time_unknown_total{instance=~"$instance"}[$__rate_interval]))`,
						Legend: "{{instance}} {{device}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "BPF map fill", Unit: "percentunit", W: 6, Goals: []Goal{{Value: 0.9, Color: "red"}},
					Description: "Entries in use against capacity. A full map drops events; the maps are sized from the machine.",
					Targets: []Target{{
						Expr:   `nerve_bpf_map_entries{instance=~"$instance", probe=~"$probe"} / nerve_bpf_map_capacity{instance=~"$instance", probe=~"$probe"}`,
						Legend: "{{instance}} {{probe}} {{map}}",
					}},
				},
			}},
			{Title: "Flight recorder", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "Outliers recorded", Unit: "ops", W: 8,
					Description: "Events slower than their signal's flight threshold, per second, that reached the recorder: " +
						"the raw evidence `nerve report` and every decision's bundle hold.",
					Targets: []Target{{
						Expr:   `sum by (instance, signal) (rate(nerve_flight_events_total{instance=~"$instance"}[$__rate_interval]))`,
						Legend: "{{instance}} {{signal}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "Outliers held", Unit: "short", W: 8,
					Description: "Outliers in the recorder's rings now, per signal; bounded by flight.max_events and flight.max_age.",
					Targets: []Target{{
						Expr:   `sum by (instance, signal) (nerve_flight_events{instance=~"$instance"})`,
						Legend: "{{instance}} {{signal}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "Outliers dropped", Unit: "ops", W: 8,
					Description: "Outliers not kept, per second: rate_limited by the kernel's per-CPU limit (flight.rate), lost to a " +
						"full BPF ring buffer, or ring_full (the oldest evicted for a newer one). A flood of outliers is itself a finding.",
					Targets: []Target{{
						Expr:   `sum by (instance, signal, reason) (rate(nerve_flight_dropped_total{instance=~"$instance"}[$__rate_interval]))`,
						Legend: "{{instance}} {{signal}} {{reason}}",
					}},
				},
			}},
			{Title: "Privileges", Panels: []Panel{
				{
					Kind: Table, Title: "Capabilities kept after attach", W: 24, H: 6,
					Description: "The capabilities the agent holds once its probes are attached: what its configuration still needs " +
						"(the log says why each was kept); the rest were dropped, from the bounding set too.",
					Targets: []Target{{Expr: `max by (instance, set, cap) (nerve_agent_capabilities{instance=~"$instance"})`}},
				},
			}},
			{Title: "What the probes cost (with --bpf-stats)", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "ns per event by program", Unit: "ns", W: 8,
					Description: "Kernel time per run of each BPF program: the tracing overhead each event pays.",
					Targets: []Target{{
						Expr: `1e9 * sum by (instance, probe, program) (rate(nerve_bpf_program_run_seconds_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))
/ sum by (instance, probe, program) (rate(nerve_bpf_program_runs_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))`,
						Legend: "{{instance}} {{program}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "Events by program", Unit: "ops", W: 8,
					Description: "Runs per second of each BPF program.",
					Targets: []Target{{
						Expr:   `sum by (instance, probe, program) (rate(nerve_bpf_program_runs_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))`,
						Legend: "{{instance}} {{program}}",
					}},
				},
				{
					Kind: TimeSeries, Title: "BPF CPU by probe", Unit: "percentunit", W: 8, Stack: true,
					Description: "Kernel CPU time spent in each probe's programs, as a share of one CPU.",
					Targets: []Target{{
						Expr:   `sum by (instance, probe) (rate(nerve_bpf_program_run_seconds_total{instance=~"$instance", probe=~"$probe"}[$__rate_interval]))`,
						Legend: "{{instance}} {{probe}}",
					}},
				},
			}},
			{Title: "The agent process", Panels: []Panel{
				{
					Kind: TimeSeries, Title: "Agent CPU", Unit: "percentunit", W: 6,
					Description: "User and system CPU of the agent process (not the BPF programs, which run in the traced tasks), as a share of one CPU.",
					Targets:     []Target{{Expr: `rate(process_cpu_seconds_total{instance=~"$instance"}[$__rate_interval])`, Legend: "{{instance}}"}},
				},
				{
					Kind: TimeSeries, Title: "Agent memory", Unit: "bytes", W: 6,
					Description: "Resident memory of the agent process, and the Go heap in use.",
					Targets: []Target{
						{Expr: `process_resident_memory_bytes{instance=~"$instance"}`, Legend: "{{instance}} resident"},
						{Expr: `go_memstats_heap_inuse_bytes{instance=~"$instance"}`, Legend: "{{instance}} Go heap"},
					},
				},
				{
					Kind: TimeSeries, Title: "Scrape cost by probe", Unit: "s", W: 6,
					Description: "Time each probe took to produce its metrics in the last scrape (maps are read at scrape time).",
					Targets: []Target{{
						Expr:   `nerve_scrape_collector_duration_seconds{instance=~"$instance", probe=~"$probe"}`,
						Legend: "{{instance}} {{probe}}",
					}},
				},
				{
					Kind: Table, Title: "Builds", W: 6,
					Description: "The nerve build each agent runs.",
					Targets:     []Target{{Expr: `max by (instance, version, revision, goversion) (nerve_build_info{instance=~"$instance"})`}},
				},
			}},
		},
	}
}
