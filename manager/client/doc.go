// Package client talks to the manager's HTTP API for the agents and the
// nerve command: one typed method per route, returning the manager's types.
//
// It promises that an error the manager answered with wraps the manager's
// sentinel for its code (errors.Is(err, manager.ErrRackBusy) and so on), as
// an *APIError that also carries the status and the message; and that a
// request is sent again only when that cannot change its outcome:
//
//   - A request that never left (the connection was refused, the name did
//     not resolve) or that a replica refused with 503 not_leader is sent to
//     the next replica, or to the leader the refusal names, whatever the
//     route.
//   - A request that may have been applied and whose answer was lost (a
//     timeout, a dropped connection, a 5xx other than not_leader) is sent
//     again only by the methods documented as retried: the reads, and the
//     writes that are idempotent (Acquire per node and request ID) or fenced
//     by a token (Renew, Release, Checkpoint: a repeat that comes too late
//     is refused as stale_token, and the caller learns it).
//   - An answer in 4xx (409 rack_busy, rack_full, stale_token; 400; 401;
//     404) is final: it is returned at once and never retried.
//
// Retries wait with a growing, jittered backoff, stop after a bounded
// number of attempts, and always end with the caller's context.
package client
