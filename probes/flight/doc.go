// Package flight is nerve's flight recorder: the outliers of every probe
// (block requests, run-queue waits, page-fault stalls, safepoints slower
// than a threshold), each with who suffered it and why, so that a decision
// report carries the kernel-level evidence behind its histograms.
//
// Probes send outliers through a Sink (event.go). In the kernel, an event
// under its threshold costs one comparison; outliers are rate-limited per
// CPU before they reach the BPF ring buffer, and every outlier not delivered
// is counted (Drops).
package flight
