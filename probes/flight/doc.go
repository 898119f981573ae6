// Package flight is nerve's flight recorder: the outliers of every probe
// (block requests, run-queue waits, page-fault stalls, safepoints slower
// than a threshold), each with who suffered it and why, so that a decision
// report carries the kernel-level evidence behind its histograms.
//
// Probes send outliers through a Sink (event.go). In the kernel, an event
// under its threshold costs one comparison; outliers are rate-limited per
// CPU before they reach the BPF ring buffer, and every outlier not delivered
// is counted (Drops).
//
// The Recorder is the agent's Sink. It keeps a ring per signal of at most
// MaxEvents events, none older than MaxAge; its strings are cut to bounded
// lengths, so its memory never exceeds MemoryBound, however many outliers
// arrive. Every outlier it lets go before its time is counted, by reason
// (ring_full here, rate_limited and lost in the probes), in its Prometheus
// metrics. Record takes one lock and allocates nothing.
//
// A Report is a window of the recorder, picked by a Query (ParseQuery reads
// one from URL parameters), summarised (Summarise: top processes, devices,
// files, VM operations, what ran instead) and raw (the slowest of each
// signal). The agent serves reports at /incidents and writes one with every
// decision; Client, Text and WriteArchive are what `nerve report` reads
// and prints them with.
package flight
