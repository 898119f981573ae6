// Package outlier is the user-space half of the probes' outlier path, the
// part the block I/O, run-queue and page-fault probes share
// (bpf/include/nerve_outlier.h is the kernel half): it sets a probe's
// thresholds and per-CPU rate limit in the BPF object before load, reads
// the probe's outlier ring buffer in a goroutine of its own, sums the
// per-CPU drop counters into flight.Drops, and turns the kernel's
// CLOCK_MONOTONIC stamps into wall-clock times.
//
// It promises that a probe with no sink pays nothing beyond one comparison
// per event in the kernel: every threshold is then set to a value no
// figure reaches, the ring buffer is shrunk to one page, and no reader runs.
package outlier
