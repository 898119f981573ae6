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
package blockio
