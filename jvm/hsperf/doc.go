// Package hsperf reads HotSpot's hsperfdata files: the memory-mapped
// performance counters a JVM publishes at /tmp/hsperfdata_<user>/<pid>
// unless it runs with -XX:-UsePerfData or -XX:+PerfDisableSharedMem.
//
// nerve uses them as the fallback source of safepoint and GC pause time for a
// JVM that has no USDT probes (a JDK built without DTrace support, or one
// started without -XX:+ExtendedDTraceProbes). The counters are cumulative
// since the JVM started, so the caller turns two snapshots into a rate.
//
// What the package promises:
//
//   - Parse never panics and never loops without bound, whatever the input.
//     Every offset and length in the file is checked against the buffer
//     before it is used, and the number of entries is capped.
//   - Every error from Parse is a *FormatError that names what is wrong and
//     the byte offset where it was found, and wraps one of ErrCorrupt,
//     ErrVersion or ErrIncomplete, so callers can tell "try again" from
//     "this is not a file we can read" with errors.Is.
//   - Only format version 2, the one current JDKs write, is read; any other
//     major version is rejected with ErrVersion rather than guessed at.
//     Both byte orders are read.
//   - The JVM keeps writing the file while nerve reads it, so a snapshot is
//     not atomic across counters (safepoint count and time may be a few
//     microseconds apart). HotSpot only appends entries and never moves
//     them, so a torn read cannot disturb entries that were complete: an
//     entry the JVM has counted but not yet written yields ErrIncomplete,
//     and one caught half-written may appear under a cut-off name or with a
//     zero value until the next read. Read and ReadInRoot re-read the file a
//     few times before they return an error.
//   - The files live in world-writable /tmp and nerve runs as root, so Read
//     does not follow a symlink in the last path element, ReadInRoot
//     resolves every symlink inside the root it is given (a container's
//     /proc/<pid>/root), and both refuse to block on a FIFO or to load
//     anything that is not a regular file or is larger than any JVM writes.
//
// The format is described by perfMemory.hpp (the PerfDataPrologue header)
// and perfData.hpp (PerfDataEntry) in the OpenJDK sources, and read by
// sun.jvmstat.perfdata.monitor.v2_0.PerfDataBuffer; the tests check this
// package against jstat's reading of the same file.
package hsperf
