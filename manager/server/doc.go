// Package server is one manager replica: a hashicorp/raft node over the
// state machine of manager/fsm, with its state in raft-boltdb and file
// snapshots, and the HTTP API the agents and the CLI use.
//
// # Writes and forwarding
//
// Every write is proposed by the leader, which stamps Command.At with its
// own clock. A follower that receives a write (or a linearizable read, or a
// peer change) checks the body, then forwards the request to the leader's
// HTTP address and copies the answer back; the leader checks the caller's
// bearer token again. The hop count travels in X-Nerve-Forwarded and a
// request forwarded twice is answered 503 not_leader, so replicas that
// disagree on the leader cannot bounce it forever. When no leader is known
// within the apply timeout the answer is 503 {"code":"not_leader",
// "leader":"host:port"} (leader when known) and the client retries.
//
// A replica knows the HTTP address of each raft server from Config.Peers
// (which includes its own) and from the joins it handled as leader. A
// leader whose HTTP address it does not know (a replica that joined later)
// is looked up in the other replicas' GET /v1/status, whose peers carry
// their HTTP addresses.
//
// # Consistency
//
// A new leader issues a raft barrier before it serves anything, so that its
// state machine holds every entry of earlier terms. GET /v1/locks and GET
// /v1/locks/validate are linearizable: the leader confirms its leadership
// with a quorum (VerifyLeader) before answering, and a follower forwards
// them. GET /v1/history, /v1/goals and /v1/reports are answered from the
// replica's own state, which may lag the leader by the replication delay;
// GET /v1/status is the replica's own view. A leader that cannot reach a
// quorum cannot commit, so it can neither grant nor validate: a partitioned
// old leader answers 503.
//
// The leader proposes OpExpire every ExpireInterval (1s), so lapsed leases
// turn suspect.
//
// # API
//
// JSON in and out; bodies over 1 MiB get 413, malformed ones or ones with
// unknown fields 400. Errors are {"error": "...", "code": "..."} with codes
// rack_busy, rack_full, stale_token (409), not_found (404), bad_request
// (400), unauthorized (401), not_leader (503), too_large (413),
// forward_failed (502). Every route but GET /healthz and GET /metrics needs
// "Authorization: Bearer TOKEN"; tokens are compared in constant time and a
// refused request changes nothing. /metrics is open as Prometheus expects;
// it carries no secrets.
//
//	POST /v1/locks/acquire       manager.Acquire      -> Grant | 409 rack_busy, rack_full
//	POST /v1/locks/renew         manager.Renew        -> Grant | 409 stale_token
//	POST /v1/locks/release       manager.Release      -> Grant | 409 stale_token
//	POST /v1/locks/checkpoint    manager.Checkpoint   -> Grant | 409 stale_token
//	POST /v1/locks/force-release manager.ForceRelease -> Grant | 404
//	POST /v1/nodes/healthy       manager.Healthy      -> {"index": N}
//	PUT  /v1/goals               manager.SetGoals     -> {"index": N}
//	POST /v1/reports             manager.Report       -> {"index": N}
//	PUT  /v1/racks               manager.RackConfig   -> {"index": N}
//	GET  /v1/locks?cluster=C                          -> [Grant] (every cluster without cluster)
//	GET  /v1/locks/validate?grant_id=ID&token=N       -> Grant | 409 stale_token
//	GET  /v1/history?from=INDEX&limit=N&wait=30s      -> [Event] (long poll up to wait, at most 60s)
//	GET  /v1/goals?cluster=&environment=&region=&zone=&rack=&node= -> {"merged", "levels"}
//	GET  /v1/reports?node=N&limit=K                   -> [Report]
//	GET  /v1/status                                   -> Status
//	POST /v1/peers/join          JoinRequest          -> {"index": N}
//	POST /v1/peers/remove        RemoveRequest        -> {"index": N}
//	GET  /healthz, GET /metrics                       (no token)
//
// With Config.TLS the HTTP API and the raft transport both use TLS, and
// mTLS when a client CA is given.
package server
