// Package fsm is the replicated state machine of the manager: the rack locks,
// the goals documents, the agents' reports and the linear history, applied
// from the hashicorp/raft log.
//
// What it promises:
//
//   - Determinism. Apply reads time only from Command.At (stamped by the
//     leader) and never iterates a map in an order that reaches the state or
//     the results, so every replica that applies the same log holds the same
//     state and returns the same results.
//   - Safety of the rack lock. A grant is made only when no other rack of the
//     cluster has a grant held or suspect, and the rack has fewer holders than
//     its limit (1 unless RackConfig says otherwise). A lapsed lease does not
//     free the rack: the grant turns suspect until its node reports healthy,
//     it is released with its token, or an operator force-releases it.
//   - Fencing tokens strictly increase over every grant ever made and are
//     never reused, across snapshots too.
//   - Apply never panics on a bad entry: it returns a *Result whose Err wraps
//     manager.ErrBadRequest, so one malformed entry cannot stop the replicas.
//   - Bounded memory: the history keeps the last MaxEvents events, each node
//     its last MaxReportsPerNode reports, the last MaxReleasedGrants
//     released grants and the last MaxRefusedAcquire refused acquires are
//     kept (older ones, and the idempotency of their requests, are
//     forgotten). Held and suspect grants are always kept.
//
// Reads (Locks, Grant, Validate, History, Goals, Reports, LastIndex) see the
// state of this replica; making them linearizable (Barrier or VerifyLeader
// first) is the server's job.
package fsm
