package dashboards

// The goals' enter thresholds (actuator/goals/default.yaml), drawn on the
// panels of the figures they judge. A node with its own goals file draws
// the built-in ones; the diagnosis panels show what the node itself decided.
var (
	goalSlowDrive    = Goal{Value: 0.050, Color: "red"}    // disk.service_idle_p99.enter
	goalDiskOverload = Goal{Value: 0.100, Color: "orange"} // disk.queue_p99.enter
	goalCPUOverload  = Goal{Value: 0.010, Color: "red"}    // cpu.runqueue_p99.enter
	goalMemoryStall  = Goal{Value: 0.020, Color: "red"}    // memory.pagefault_stall_p99.enter
	goalStopped      = Goal{Value: 0.5, Color: "red"}      // jvm.stopped_fraction.enter
)

// instanceVar is the agents: every instance that reports a build.
var instanceVar = Var{
	Name: "instance", Label: "Agent",
	Description: "nerve agents (instances with nerve_build_info).",
	Query:       `label_values(nerve_build_info, instance)`,
}

// diagnosisStates colours nerve_diagnosis.
var diagnosisStates = []State{{"0", "ok", "green"}, {"1", "diagnosed", "red"}}

// Annotations shared by the agent dashboards.
var (
	// A diagnosis is a region from the tick it entered to the tick it cleared.
	diagnosisAnnotation = Annotation{
		Name:  "Diagnoses",
		Expr:  `max by (instance, kind) (nerve_diagnosis{instance=~"$instance"}) == 1`,
		Title: "{{kind}}", Text: "{{instance}}: {{kind}} (nerve status on the node gives the evidence)",
		Tags: "instance,kind", Color: "red", StepSeconds: 30,
	}
	// A decision is a point: the counter went up, or its series was born.
	// nerve_actions_total{action,result} starts at 0 for every configured
	// action, but a combination the agent could not list ahead starts to
	// exist at its first decision, with the value 1, which increase()
	// cannot see; the `unless ... offset` half catches those.
	actionAnnotation = Annotation{
		Name: "Actions",
		Expr: `sum by (instance, action, result) (increase(nerve_actions_total{instance=~"$instance"}[1m])) > 0
or
sum by (instance, action, result) (nerve_actions_total{instance=~"$instance"} > 0 unless nerve_actions_total{instance=~"$instance"} offset 1m)`,
		Title: "{{action}}: {{result}}", Text: "{{instance}}: action {{action}}, {{result}}",
		Tags: "instance,action,result", Color: "orange", StepSeconds: 60,
	}
)

func nodeHealth() Dashboard {
	return Dashboard{
		File:  "node-health.json",
		UID:   "nerve-node-health",
		Title: "nerve / node health",
		Description: "What nerve's probes see on each node: block service time at in-flight 0 (the drive's own latency) " +
			"against queue time per device, run-queue delay, page-fault stalls, and JVM safepoints and time stopped.",
		Vars: []Var{
			instanceVar,
			{Name: "device", Label: "Device", Description: "Block devices the block I/O probe has seen (partitions folded into their disk).",
				Query: `label_values(nerve_block_requests_total{instance=~"$instance"}, device)`},
			{Name: "target", Label: "Target", Description: `Run-queue and page-fault targets; "node" is every task.`,
				Query: `label_values(nerve_runqueue_delay_seconds_count{instance=~"$instance"}, target)`},
			{Name: "jvm", Label: "JVM target", Description: "JVMs watched, by target (the JVM's command name when no targets are set).",
				Query: `label_values(nerve_jvm_watched{instance=~"$instance"}, target)`},
		},
		Annotations: []Annotation{diagnosisAnnotation, actionAnnotation},
		Rows: []Row{
			{Panels: []Panel{{
				Kind: StateTimeline, Title: "Diagnoses", W: 24, H: 5, States: diagnosisStates,
				Description: "Each diagnosis of each agent over time, as the agent decided it against its goals. " +
					"`nerve status` on the node gives the evidence and the action taken.",
				Targets: []Target{{Expr: `max by (instance, kind) (nerve_diagnosis{instance=~"$instance"})`, Legend: "{{instance}} {{kind}}"}},
			}}},
			blockRow(),
			cpuRow(),
			memoryRow(),
			jvmRow(),
		},
	}
}

// blockRow repeats per device: the drive's own latency next to queue time,
// the split that tells slow_drive from disk_overload.
func blockRow() Row {
	return Row{Title: "Block I/O: $device", Repeat: "device", Panels: []Panel{
		{
			Kind: Heatmap, Title: "Service time at in-flight 0: $device", Unit: "s",
			Description: "Requests issued while nothing else was in flight on the device, from issue to completion: " +
				"the drive's own latency, which load cannot raise. Its p99 above 50 ms is slow_drive.",
			Targets: []Target{{Expr: `sum by (le) (rate(nerve_block_service_seconds_bucket{instance=~"$instance", device=~"$device", inflight="0"}[$__rate_interval]))`}},
		},
		{
			Kind: Heatmap, Title: "Queue time: $device", Unit: "s",
			Description: "From the request's start (or from the submitter's sleep for a tag) until issue to the driver: " +
				"tag waits, plugging, the I/O scheduler. High queue time with a normal in-flight-0 service time is disk_overload.",
			Targets: []Target{{Expr: `sum by (le) (rate(nerve_block_queue_seconds_bucket{instance=~"$instance", device=~"$device"}[$__rate_interval]))`}},
		},
		{
			Kind: TimeSeries, Title: "p99: drive latency vs queue time", Unit: "s", W: 6,
			Goals: []Goal{goalSlowDrive, goalDiskOverload},
			Description: "The two figures the disk rules judge, over the panel's interval. Dashed: the built-in enter " +
				"thresholds of slow_drive (50 ms) and disk_overload (100 ms).",
			Targets: []Target{
				{Expr: `histogram_quantile(0.99, sum by (instance, le) (rate(nerve_block_service_seconds_bucket{instance=~"$instance", device=~"$device", inflight="0"}[$__rate_interval])))`,
					Legend: "{{instance}} service, in-flight 0"},
				{Expr: `histogram_quantile(0.99, sum by (instance, le) (rate(nerve_block_queue_seconds_bucket{instance=~"$instance", device=~"$device"}[$__rate_interval])))`,
					Legend: "{{instance}} queue"},
			},
		},
		{
			Kind: TimeSeries, Title: "Service time p99 by requests in flight", Unit: "s", W: 6,
			Description: "How the device's service time grows with its load: a drive that is slow only under load is busy, " +
				"one that is slow at in-flight 0 is failing.",
			Targets: []Target{{
				Expr:   `histogram_quantile(0.99, sum by (instance, inflight, le) (rate(nerve_block_service_seconds_bucket{instance=~"$instance", device=~"$device"}[$__rate_interval])))`,
				Legend: "{{instance}} in flight {{inflight}}",
			}},
		},
		{
			Kind: TimeSeries, Title: "Requests and errors", Unit: "reqps", W: 6,
			Description: "Completed requests per second by operation, and those completed with an error status.",
			Targets: []Target{
				{Expr: `sum by (instance, op) (rate(nerve_block_requests_total{instance=~"$instance", device=~"$device"}[$__rate_interval]))`,
					Legend: "{{instance}} {{op}}"},
				{Expr: `sum by (instance, op) (rate(nerve_block_errors_total{instance=~"$instance", device=~"$device"}[$__rate_interval]))`,
					Legend: "{{instance}} {{op}} errors"},
			},
		},
		{
			Kind: TimeSeries, Title: "Requests in flight", Unit: "short", W: 6,
			Description: "Requests issued to the driver and not yet completed, as the probe saw them at the scrape.",
			Targets: []Target{{
				Expr:   `sum by (instance) (nerve_block_inflight_requests{instance=~"$instance", device=~"$device"})`,
				Legend: "{{instance}}",
			}},
		},
	}}
}

func cpuRow() Row {
	return Row{Title: "CPU: run-queue delay", Panels: []Panel{
		{
			Kind: Heatmap, Title: "Run-queue delay: $target", Unit: "s",
			Description: "How long runnable tasks waited for a CPU, from wakeup or preemption until they ran.",
			Targets:     []Target{{Expr: `sum by (le) (rate(nerve_runqueue_delay_seconds_bucket{instance=~"$instance", target=~"$target"}[$__rate_interval]))`}},
		},
		{
			Kind: TimeSeries, Title: "Run-queue delay p99", Unit: "s", W: 6, Goals: []Goal{goalCPUOverload},
			Description: "The figure the cpu_overload rule judges for the database's target (the node's when none is set). Dashed: its built-in enter threshold, 10 ms.",
			Targets: []Target{{
				Expr:   `histogram_quantile(0.99, sum by (instance, target, le) (rate(nerve_runqueue_delay_seconds_bucket{instance=~"$instance", target=~"$target"}[$__rate_interval])))`,
				Legend: "{{instance}} {{target}}",
			}},
		},
		{
			Kind: TimeSeries, Title: "CPU pressure (PSI)", Unit: "percentunit", W: 6,
			Description: "Share of wall time some (or all, full) non-idle tasks waited for a CPU, from /proc/pressure/cpu: context, not a call to action.",
			Targets: []Target{{
				Expr:   `rate(nerve_cpu_pressure_waiting_seconds_total{instance=~"$instance"}[$__rate_interval])`,
				Legend: "{{instance}} {{kind}}",
			}},
		},
	}}
}

func memoryRow() Row {
	return Row{Title: "Memory: page-fault stalls", Panels: []Panel{
		{
			Kind: Heatmap, Title: "Page-fault stalls: $target", Unit: "s",
			Description: "One observation per blocking sleep inside a user page fault, until the thread ran again.",
			Targets:     []Target{{Expr: `sum by (le) (rate(nerve_pagefault_stall_seconds_bucket{instance=~"$instance", target=~"$target"}[$__rate_interval]))`}},
		},
		{
			Kind: TimeSeries, Title: "Page-fault stall p99", Unit: "s", W: 6, Goals: []Goal{goalMemoryStall},
			Description: "The figure the memory_stall rule judges. Dashed: its built-in enter threshold, 20 ms.",
			Targets: []Target{{
				Expr:   `histogram_quantile(0.99, sum by (instance, target, le) (rate(nerve_pagefault_stall_seconds_bucket{instance=~"$instance", target=~"$target"}[$__rate_interval])))`,
				Legend: "{{instance}} {{target}}",
			}},
		},
		{
			Kind: TimeSeries, Title: "Major page faults", Unit: "ops", W: 6,
			Description: "Faults that needed I/O, per second: /proc/vmstat for the node, /proc/<pid>/stat for process targets.",
			Targets: []Target{{
				Expr:   `rate(nerve_pagefaults_major_total{instance=~"$instance", target=~"$target"}[$__rate_interval])`,
				Legend: "{{instance}} {{target}}",
			}},
		},
	}}
}

func jvmRow() Row {
	return Row{Title: "JVM: safepoints and time stopped", Panels: []Panel{
		{
			Kind: TimeSeries, Title: "Time stopped at safepoints", Unit: "percentunit", W: 8, Goals: []Goal{goalStopped},
			Description: "Share of the last 10 s and 1 m the target's worst JVM spent stopped. The 1 m figure above 0.5 is query_of_death.",
			Targets: []Target{{
				Expr:   `nerve_jvm_stopped_fraction{instance=~"$instance", target=~"$jvm"}`,
				Legend: "{{instance}} {{target}} {{window}}",
			}},
		},
		{
			Kind: Heatmap, Title: "Safepoint pauses: $jvm", Unit: "s", W: 8,
			Description: "Every safepoint, from the start of synchronisation to the end (hs_private:safepoint__begin/end).",
			Targets:     []Target{{Expr: `sum by (le) (rate(nerve_jvm_safepoint_seconds_bucket{instance=~"$instance", target=~"$jvm"}[$__rate_interval]))`}},
		},
		{
			Kind: TimeSeries, Title: "Thrash bucket", Unit: "s", W: 8,
			Description: "jvmquake's token bucket (+pause, -running time x weight), fullest JVM of the target. " +
				"Over the threshold (30 s by default) the JVM runs less than 1/(1+weight) of the time: query_of_death.",
			Targets: []Target{{
				Expr:   `nerve_jvm_thrash_bucket_seconds{instance=~"$instance", target=~"$jvm"}`,
				Legend: "{{instance}} {{target}}",
			}},
		},
		{
			Kind: TimeSeries, Title: "Pause p99: safepoint, GC, time to safepoint", Unit: "s", W: 8,
			Description: "Time to safepoint is how long threads took to stop: long ones point at counted loops or page faults, not at the collector.",
			Targets: []Target{
				{Expr: `histogram_quantile(0.99, sum by (instance, target, le) (rate(nerve_jvm_safepoint_seconds_bucket{instance=~"$instance", target=~"$jvm"}[$__rate_interval])))`,
					Legend: "{{instance}} {{target}} safepoint"},
				{Expr: `histogram_quantile(0.99, sum by (instance, target, le) (rate(nerve_jvm_gc_pause_seconds_bucket{instance=~"$instance", target=~"$jvm"}[$__rate_interval])))`,
					Legend: "{{instance}} {{target}} GC"},
				{Expr: `histogram_quantile(0.99, sum by (instance, target, le) (rate(nerve_jvm_time_to_safepoint_seconds_bucket{instance=~"$instance", target=~"$jvm"}[$__rate_interval])))`,
					Legend: "{{instance}} {{target}} time to safepoint"},
			},
		},
		{
			Kind: TimeSeries, Title: "Time stopped by VM operation", Unit: "percentunit", W: 8, Stack: true,
			Description: "Share of wall time spent in each VM operation (G1CollectFull, ThreadDump, ...), summed over the target's JVMs.",
			Targets: []Target{{
				Expr:   `sum by (instance, operation) (rate(nerve_jvm_vm_operation_seconds_sum{instance=~"$instance", target=~"$jvm"}[$__rate_interval]))`,
				Legend: "{{instance}} {{operation}}",
			}},
		},
		{
			Kind: TimeSeries, Title: "JVMs watched, and thrashing", Unit: "short", W: 8,
			Description: `JVMs by target, with their USDT probes attached (probes="true") or read from hsperfdata only; ` +
				"and 1 while a JVM of the target has its thrash bucket over the threshold.",
			Targets: []Target{
				{Expr: `sum by (instance, target, probes) (nerve_jvm_watched{instance=~"$instance", target=~"$jvm"})`,
					Legend: "{{instance}} {{target}} probes={{probes}}"},
				{Expr: `nerve_jvm_thrash_over{instance=~"$instance", target=~"$jvm"}`,
					Legend: "{{instance}} {{target}} thrashing"},
			},
		},
	}}
}
