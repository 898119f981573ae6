// Package report keeps and explains the actuator's decisions: what was
// wrong (the evidence, with its thresholds and durations), the context, the
// rungs the ladder considered and why the lower ones were passed over, the
// rack-lock token, the steps run and the outcome.
//
// A Store keeps one JSON file per decision in the state directory, written
// atomically (a crash leaves the old file or the new one, and a leftover
// temporary file is ignored and removed at Open), and bounded to the last N.
// A file that does not parse is skipped with a logged error, never fatal.
// Text is the readable form `nerve status` prints; Handler serves the
// decisions over HTTP as JSON.
package report
