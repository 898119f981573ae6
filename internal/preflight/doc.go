// Package preflight runs the hardware checks a new database node passes
// before it joins: a direct-I/O burn-in of each data mount, a TCP connect
// probe of its peers and of the managers, and whether the kernel runs the
// block I/O probe. `nerve preflight` wires it to the configuration, so that
// `ExecStartPre=nerve preflight` keeps a node with a bad drive, a bad
// network or a kernel the agent cannot watch from starting the database.
//
// # Promises
//
//   - Every check gives a figure, its goal, pass or fail, and for a failure
//     one line that names the mount, peer or endpoint and the figure, like
//     "disk /var/lib/cassandra: p99 62.3ms above 50ms".
//   - The burn-in writes only its scratch file, .nerve-preflight.<pid> in
//     the mount, and removes it when done, failed or interrupted. A file
//     of that name left by a process that no longer exists (a run that was
//     killed) is removed at the next run.
//   - A mount's burn-in ends within its timeout even when the drive stops
//     answering: the check fails then, and the request still blocked in the
//     kernel is left behind (the process exits soon after).
//   - Checks run one after the other, so that none disturbs another's
//     figures.
//   - Recording a result at the manager is separate from the checks: a
//     manager that cannot be reached never fails a check.
package preflight
