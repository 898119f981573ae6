// Package drill runs nerve's fault drills: on the operator's own kernel, it
// creates each fault nerve claims to detect, runs the agent's real probes,
// sampler, rules and action ladder on it, and reports whether nerve reached
// the expected diagnosis, which action it would take, and how long detection
// took from the fault's onset.
//
// # Scenarios
//
// Besides the drills (Names, one fault each), two kinds of scenario check
// that nerve tells things apart:
//   - Controls (Controls): a busy, healthy machine (a healthy drive under
//     readers and page faults, a busy JVM, CPU load below the CPU count).
//     A control passes only when no diagnosis at all enters during its run
//     (controlFor), on any subject.
//   - Mixed cases (Mixed): two things wrong at once. A slow drive that is
//     also saturated must be slow_drive (replace it), never disk_overload;
//     a slow drive while the CPUs are overloaded must give slow_drive on the
//     drive and cpu_overload on the node, and not disk_overload.
//
// # What a drill touches
//
// Only what it makes itself, all recorded under the scratch directory
// (DefaultScratch unless told otherwise): FUSE-backed loop devices from
// internal/faults, one cgroup v2 directory named nerve-drill-<pid> under the
// cgroup2 root, and the processes it starts (CPU hogs and a page toucher,
// which are this binary run again as helpers, see RunHelper, and a JVM). It
// never reads or writes the operator's disks or processes; the probes watch
// only the drill's devices, cgroup and JVM for the verdict (a control's
// verdict is the whole node's: nothing may enter anywhere).
//
// # Promises
//
//   - Everything a drill makes is removed when it ends, when ctx is cancelled
//     (SIGINT, SIGTERM) and, after a crash or SIGKILL, by the next run, which
//     first kills the recorded processes (pid and start time must match),
//     kills and removes the recorded cgroups, and then detaches the loop
//     devices and unmounts the filesystems under the scratch directory
//     (faults.CleanupLeftovers). Two runs never share a scratch directory: a
//     run refuses to start while the recorded owner is alive.
//   - Rules and ladder are the agent's (actuator/diagnose, actuator/ladder,
//     the sampler of internal/agent). The goals are the default thresholds
//     with shorter durations (DrillGoals): for and clear_for of 1 s on a 2 s
//     tick (two windows in a row), so a drill takes seconds rather than the minutes the production
//     durations ask for. The ladder runs in advise mode (nothing is acted
//     upon) over the agent's action catalog with every action taken as
//     configured, so the report names the action a fully configured node
//     would choose.
//   - The query-of-death drill needs java (11 or later) on PATH; without it
//     the drill fails and says so.
package drill
