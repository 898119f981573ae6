// Package blockio measures block I/O per disk with CO-RE eBPF
// (bpf/blockio.bpf.c): service time excluding queueing, split by the number
// of requests already in flight at issue, and queue time including waits for
// a driver tag.
//
// Service time at in-flight 0 is the drive's own latency, free of load: the
// cleanest signal that a drive is slow (needs replacing) rather than
// overloaded (needs less work), which shows as queue time instead.
//
// The probe attaches tp_btf programs where the kernel has them (5.5+) and
// raw_tp programs otherwise; it measures tag waits where task storage exists
// (5.11+). Nothing is lost silently: every place the kernel side can drop an
// event is counted in nerve_probe_drops_total{probe="blockio"}. Maps are read
// at scrape time only.
//
// With a sink configured (Config.Outliers), requests slower than the outlier
// thresholds are sent to it with their context (flight.BlockEvent) by a
// reader goroutine that Close ends; OutlierDrops counts those the kernel
// rate-limited or could not store. Queue time 0 in an outlier can also mean
// the kernel gave no start time for it (as nerve_block_queue_time_unknown_total
// counts).
package blockio
