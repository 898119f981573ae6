// Package diagnose holds nerve's rules: a deterministic state machine,
// stepped once per Sample, that says which diagnoses (actuator.Kind) hold
// for which subject (a device, a JVM, a mount, or "node") against the
// operator's goals (actuator/goals).
//
// It promises:
//   - Time comes only from Sample.At: the same samples give the same
//     Changes, whatever the clock.
//   - Hysteresis: a rule enters after its figure has stayed above the goal's
//     enter for the goal's for, and clears after it has stayed below exit for
//     clear_for. A figure between exit and enter changes nothing.
//   - A window without data (NaN, or a drive with too few requests at
//     in-flight 0) neither enters nor clears a rule nor breaks a run: a run is
//     measured from its first window to its latest one with data.
//   - Active() is always the diagnoses entered and not yet cleared by the
//     Changes Step has returned, and every entered Diagnosis carries the
//     Evidence that made it enter and the Sample's Context.
//
// Two exceptions to the timing: a JVM whose thrash bucket is over enters
// query_of_death at once, and a JVM that is gone from a Sample that has JVM
// data (its pid is no longer in Sample.JVMs) clears at once, since its
// figures will never come back to clear it.
package diagnose
