// Package manager is nerve's small control plane: a few replicas running
// hashicorp/raft that grant rack locks (at most one rack of a cluster down
// at a time), keep goals documents and agents' reports, and keep a linear
// history of every transition. This file is the contract between its parts:
// the state machine (manager/fsm), the replica and its HTTP API
// (manager/server), and the client the agents and the CLI use
// (manager/client).
package manager

import (
	"encoding/json"
	"errors"
	"time"
)

// Op names a command of the replicated log.
type Op string

// The commands. Every one is applied by the state machine deterministically:
// time comes from Command.At, stamped by the leader when it proposes, never
// from a clock inside Apply.
const (
	OpAcquire      Op = "acquire"       // Acquire
	OpRenew        Op = "renew"         // Renew
	OpRelease      Op = "release"       // Release
	OpCheckpoint   Op = "checkpoint"    // Checkpoint
	OpHealthy      Op = "healthy"       // Healthy: a node reports healthy; its suspect grants are freed
	OpForceRelease Op = "force_release" // ForceRelease
	OpExpire       Op = "expire"        // Expire: the leader marks lapsed leases suspect (proposed on a timer)
	OpSetGoals     Op = "set_goals"     // SetGoals
	OpReport       Op = "report"        // Report: an agent's decision report
	OpRackConfig   Op = "rack_config"   // RackConfig: per-rack holder limits
)

// Command is one log entry.
type Command struct {
	Op   Op              `json:"op"`
	At   time.Time       `json:"at"` // the leader's clock when proposed
	Body json.RawMessage `json:"body"`
}

// Acquire asks for the rack lock. Idempotent per (Node, RequestID): asking
// again returns the same answer, the same grant or the same refusal, so a
// client may retry an Apply whose result it never saw, and a copy of the
// request delayed in the network cannot take a lock its sender was refused
// (and no longer waits for). A new attempt needs a new RequestID.
type Acquire struct {
	Cluster   string        `json:"cluster"`
	Rack      string        `json:"rack"`
	Node      string        `json:"node"`
	Operation string        `json:"operation"` // e.g. "jvmquake", "transfer-and-exit"
	RequestID string        `json:"request_id"`
	Lease     time.Duration `json:"lease"` // how long the grant lives without a Renew
}

// Grant is a rack lock held by a node.
type Grant struct {
	ID        string     `json:"id"`
	Token     uint64     `json:"token"` // fencing token: strictly increasing over all grants
	Cluster   string     `json:"cluster"`
	Rack      string     `json:"rack"`
	Node      string     `json:"node"`
	Operation string     `json:"operation"`
	RequestID string     `json:"request_id"`
	State     GrantState `json:"state"`
	Granted   time.Time  `json:"granted"`
	Expires   time.Time  `json:"expires"`
	Step      string     `json:"step,omitempty"` // the last checkpointed step
}

// GrantState is where a grant is in its life.
type GrantState string

// Grant states. A lease that lapses does not free the rack: the grant turns
// suspect until the node reports healthy or an operator force-releases it.
const (
	Held     GrantState = "held"
	Suspect  GrantState = "suspect"
	Released GrantState = "released"
)

// Renew keeps a lease alive.
type Renew struct {
	GrantID string        `json:"grant_id"`
	Token   uint64        `json:"token"`
	Lease   time.Duration `json:"lease"`
}

// Release gives a rack lock back; a stale token is refused.
type Release struct {
	GrantID string `json:"grant_id"`
	Token   uint64 `json:"token"`
}

// Checkpoint records the step an action holding the lock has reached; a
// stale token is refused.
type Checkpoint struct {
	GrantID string `json:"grant_id"`
	Token   uint64 `json:"token"`
	Step    string `json:"step"`
}

// Healthy is a node's word that it is up again: its suspect grants are released.
type Healthy struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
}

// ForceRelease frees a grant by an operator's hand, with a reason for the history.
type ForceRelease struct {
	GrantID string `json:"grant_id"`
	Reason  string `json:"reason"`
	By      string `json:"by"`
}

// Expire turns every held grant whose lease ended before Command.At suspect.
type Expire struct{}

// Level is a level of the goals hierarchy, broadest first. A lower level
// overrides a higher one field by field.
type Level string

// The levels.
const (
	LevelCluster     Level = "cluster"
	LevelEnvironment Level = "environment"
	LevelRegion      Level = "region"
	LevelZone        Level = "zone"
	LevelRack        Level = "rack"
	LevelNode        Level = "node"
)

// Levels in merge order.
var Levels = []Level{LevelCluster, LevelEnvironment, LevelRegion, LevelZone, LevelRack, LevelNode}

// SetGoals stores a goals document (YAML, as actuator/goals reads it) at one
// level; an empty Document deletes it.
type SetGoals struct {
	Level    Level  `json:"level"`
	Key      string `json:"key"` // the cluster name, the rack name, the node name, ...
	Document string `json:"document"`
}

// Where places a node in the hierarchy, to fetch its merged goals.
type Where struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	Region      string `json:"region"`
	Zone        string `json:"zone"`
	Rack        string `json:"rack"`
	Node        string `json:"node"`
}

// Report stores an agent's decision report (the actuator's JSON) in the log.
type Report struct {
	Node     string          `json:"node"`
	ID       string          `json:"id"`
	Decision json.RawMessage `json:"decision"`
}

// RackConfig sets how many nodes of one rack may hold the lock at once
// (default 1).
type RackConfig struct {
	Cluster    string `json:"cluster"`
	Rack       string `json:"rack"`
	MaxHolders int    `json:"max_holders"`
}

// Event is one entry of the linear history, indexed by the Raft index of
// the command that caused it.
type Event struct {
	Index  uint64    `json:"index"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // grant, renew, suspect, release, force_release, goals, decision, healthy, refuse
	Grant  *Grant    `json:"grant,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Sentinel errors, returned by the state machine and carried by the API as
// codes; callers use errors.Is.
var (
	ErrRackBusy     = errors.New("another rack of the cluster holds the lock") // code rack_busy
	ErrRackFull     = errors.New("the rack has its maximum of holders")        // code rack_full
	ErrStaleToken   = errors.New("stale or unknown grant token")               // code stale_token
	ErrNotFound     = errors.New("not found")                                  // code not_found
	ErrNotLeader    = errors.New("not the leader")                             // code not_leader
	ErrBadRequest   = errors.New("bad request")                                // code bad_request
	ErrUnauthorized = errors.New("missing or wrong bearer token")              // code unauthorized
)
