// Package agent runs nerve's node agent: it checks that the machine can run
// BPF probes, starts the probes the configuration enables, and serves their
// metrics, with the agent's own, over HTTP until its context is cancelled.
//
// It promises that a probe that cannot start never stops the others: it is
// logged and exported as nerve_probe_attached{probe="..."} 0, unless
// probes.strict is set, in which case Run fails naming the probe. On
// cancellation it stops serving, then closes every probe, then switches off
// the BPF statistics it switched on, in that order, so that no scrape reads a
// closed probe.
//
// Probes reach the agent through the small Probe interface defined here; a
// probe package does not import this one.
package agent
