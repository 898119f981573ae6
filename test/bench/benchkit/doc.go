// Package benchkit holds what the tracing-overhead benchmarks under test/bench
// share: running a tracer (the nerve agent or a libbpf-tools program) as a
// child process, finding the BPF programs it holds through its file
// descriptors, turning kernel.bpf_stats_enabled on for a run and back, and
// reading how long each of those programs ran while a load went on.
//
// The benchmarks are commands run by hand or by CI as root; nothing here is
// imported by the agent. Figures are only printed, never asserted.
package benchkit
