// Package actions carries out what the action ladder decides: live control of
// the database (Nodetool, CQLLiveness), restarting a systemd unit
// (SystemdRestart), killing a dying JVM after dumping it (JVMQuake), the
// operator's own command for the rungs that take the node away (Hook), and
// alerts (Webhook).
//
// Every action takes a context and is bounded by its own timeout as well, so
// a wedged database or bus cannot hold the actuator. Commands run with an
// argv, never through a shell, so no string from a diagnosis or a
// configuration is ever interpreted by one. Errors name the action and what
// it acted on. Actions are idempotent where the operation allows: setting a
// throughput twice is the same as once, and killing a JVM that is already
// gone succeeds.
package actions
