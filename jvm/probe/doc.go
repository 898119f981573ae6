// Package probe watches every stop-the-world moment of the JVMs on the node
// through HotSpot's USDT probes (bpf/jvm.bpf.c): it finds JVMs (processes
// that map libjvm.so, in any mount namespace), attaches uprobes to each
// distinct libjvm.so, follows new, restarted and exited JVMs, and turns the
// pause events into metrics and into a per-JVM signal the actuator can
// subscribe to. x86-64 only for now: the argument registers of the probes
// are read from x86's pt_regs.
//
// The uprobes are uprobe_multi links where the kernel has them (Linux 6.6,
// one link per program and library, CAP_BPF and CAP_PERFMON), classic
// perf-event uprobes otherwise or when Config.Attach says so (one per
// location, and CAP_SYS_ADMIN since the kernel fix ba677dbe77af); the agent
// asks AttachMode which capabilities to keep.
//
// With a sink configured (Config.Outliers), every safepoint whose pause is
// at least Config.OutlierPause is also sent to it (flight.SafepointEvent),
// with the VM operations that ran in it and the time to safepoint, from the
// reader goroutine that Close ends.
package probe
