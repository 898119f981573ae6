// Package bpfstats exports what each of the agent's BPF programs costs, from
// the kernel's own run-time statistics: how often each program ran and the
// CPU time it took, per probe and program.
//
// The kernel keeps these figures only while statistics are enabled, which is
// machine-wide and adds a little to every run of every BPF program, so Enable
// turns them on for as long as its Closer stays open and the agent does so
// only when asked (bpf_stats / --bpf-stats). The Collector reads the figures
// at scrape time, never on a timer.
package bpfstats
