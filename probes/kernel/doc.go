// Package kernel finds out what the running kernel offers the agent, and gets
// the machine into the state the probes need before any of them loads.
//
// Detect probes each feature once per process, by loading and attaching a
// tiny program where that is the only trustworthy test, and caches the answer;
// each missing feature keeps the error that explains it, so a "no" in the
// start-up table says why. EnsureMounts mounts tracefs and bpffs when they are
// missing, and CheckPrivileges says clearly when the agent lacks the
// privileges to load BPF programs at all.
//
// Call order matters: CheckPrivileges, EnsureMounts, then Detect (the
// tracepoint test reads event ids from tracefs).
package kernel
