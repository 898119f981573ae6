// Package javatest runs real JVMs for nerve's tests: it compiles the small
// Java programs under java/ (embedded, so a test needs no path to them), starts
// them with safepoint logging on, and reads the JVM's own safepoint log.
//
// The programs create the conditions the JVM probes and the thrash detector
// are tested against, and the log is the independent figure to check them
// with:
//
//   - SafepointLoop forces safepoints (full GCs, thread dumps) in a loop.
//   - HeapThrash keeps its live set near -Xmx, so the JVM spends most of its
//     wall time stopped in GC: a GC spiral, the query of death.
//   - Busy is a healthy busy JVM whose stopped time is a small fraction.
//
// Every helper takes a testing.TB and fails the test itself. Compile and
// Start skip when java or javac is missing, or fail when privileged tests are
// required (privtest), and every JVM started is killed and reaped when its
// test ends.
package javatest
