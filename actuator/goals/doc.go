// Package goals holds the operator's goals: the thresholds at which nerve's
// rules (actuator/diagnose) enter and clear, with the defaults nerve runs on
// when no goals file is given (default.yaml, embedded, where each goal is
// explained).
//
// It promises that Goals returned by Parse or Load have passed Validate: on
// every rule exit is below enter, thresholds are positive and finite, and
// durations are not negative. Every error names the field by its YAML path
// (for example disk.service_idle_p99.exit) and, when YAML reports one, the
// line.
package goals
