package actions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nervehq/nerve/actuator"
)

// DefaultHookTimeout bounds a hook when Hook.Timeout is 0. A decommission
// streams the node's data away, which takes long.
const DefaultHookTimeout = 6 * time.Hour

// The environment variables a hook receives.
const (
	EnvDecisionID = "NERVE_DECISION_ID"
	EnvDiagnosis  = "NERVE_DIAGNOSIS"
	EnvLockToken  = "NERVE_LOCK_TOKEN"
)

// Hook is the operator's command for rungs 4 and 5, transfer the data and
// exit or exit without transfer: `nodetool decommission`, a cloud API call.
// nerve cannot know how to replace a node; the operator's command does. Argv
// is run as is, with no shell; an operator who wants one writes it in Argv.
type Hook struct {
	Argv    []string
	Timeout time.Duration // 0 means DefaultHookTimeout
	// Env is added to the agent's environment ("KEY=value"); the NERVE_*
	// variables are set last and cannot be overridden.
	Env []string
	// MaxOutput bounds the output kept for the report; 0 means 64 KiB.
	MaxOutput int
}

// HookCall says which decision the hook carries out. The lock token is the
// rack lock's fencing token: a hook that calls the manager, or anything that
// checks fencing, passes it on.
type HookCall struct {
	DecisionID string
	Diagnosis  actuator.Kind
	LockToken  uint64
}

// Run runs the hook with the call in its environment. A non-zero exit is an
// error; the result holds the hook's output either way.
func (h Hook) Run(ctx context.Context, c HookCall) (CommandResult, error) {
	if len(h.Argv) == 0 {
		return CommandResult{ExitCode: -1}, errors.New("hook: no command configured")
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = DefaultHookTimeout
	}
	env := append(append([]string(nil), h.Env...),
		EnvDecisionID+"="+c.DecisionID,
		EnvDiagnosis+"="+string(c.Diagnosis),
		EnvLockToken+"="+strconv.FormatUint(c.LockToken, 10),
	)
	res, err := runCommand(ctx, h.Argv, env, timeout, h.MaxOutput)
	if err != nil {
		return res, fmt.Errorf("hook %q for decision %s: %w", h.Argv[0], c.DecisionID, err)
	}
	return res, nil
}
