// Package thrash detects a JVM in a GC spiral or stuck on a query of death:
// one that spends so much of its wall time stopped that it makes almost no
// progress while still looking alive.
//
// The rule is jvmquake's token bucket (github.com/Netflix-Skunkworks/jvmquake),
// fed with every stop-the-world pause, safepoints of any kind and not only
// GC: the bucket starts empty; at the end of each pause it gains the pause's
// duration; while the JVM runs, between pauses, it drains by the running time
// times Weight, never below empty; the detector is over when the bucket holds
// more than Threshold.
//
// What the defaults mean. Stopped a fraction f of the time, the bucket gains
// f and drains Weight×(1−f) per second of wall time, so it grows only while
// f > Weight/(1+Weight): with the default Weight 5, when the JVM is stopped
// more than 5/6 (83%) of the time, its application throughput below 1/6 (the
// "throughput of 1/(5+1)" of jvmquake's defaults). Below that, the bucket
// never holds much more than the longest pause, so only one pause longer than
// Threshold (30 s) triggers it. Above it, the bucket grows by
// f − Weight×(1−f) per second until it passes Threshold: at 90% stopped,
// 0.4 s per second, 75 s to trigger. Config.CriticalFraction and
// Config.TimeToTrigger give these figures for any configuration.
//
// The detector is deterministic: every time it uses comes from the pauses it
// is given and the times it is asked about, never from the clock, so a test
// or a replayed log gives the same answers every run.
package thrash
