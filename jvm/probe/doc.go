// Package probe watches every stop-the-world moment of the JVMs on the node
// through HotSpot's USDT probes (bpf/jvm.bpf.c): it finds JVMs (processes
// that map libjvm.so, in any mount namespace), attaches uprobes to each
// distinct libjvm.so, follows new, restarted and exited JVMs, and turns the
// pause events into metrics and into a per-JVM signal the actuator can
// subscribe to. x86-64 only for now: the argument registers of the probes
// are read from x86's pt_regs.
//
// With a sink configured (Config.Outliers), every safepoint whose pause is
// at least Config.OutlierPause is also sent to it (flight.SafepointEvent),
// with the VM operations that ran in it and the time to safepoint, from the
// reader goroutine that Close ends.
package probe
