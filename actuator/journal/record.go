package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// State is where an action, or one of its steps, stands.
type State string

// The states. An action is running, done or failed; a step is pending,
// started, done or failed.
const (
	Pending State = "pending" // step: not started yet
	Started State = "started" // step: begun, not recorded done: runs again on Resume
	Running State = "running" // action: in flight, or interrupted
	Done    State = "done"    // action or step: finished
	Failed  State = "failed"  // action or step: a step returned an error
)

// version is the record format; a file of another version is refused.
const version = 1

// Record is the checkpoint of one action, as written to <id>.json.
type Record struct {
	Version int          `json:"version"`
	ID      string       `json:"id"`
	State   State        `json:"state"`
	Created time.Time    `json:"created"`
	Updated time.Time    `json:"updated"`
	Error   string       `json:"error,omitempty"` // the failed step's error
	Steps   []StepRecord `json:"steps"`
}

// StepRecord is one step's result.
type StepRecord struct {
	Name  string `json:"name"` // what the step does, e.g. "nodetool setcompactionthroughput"
	State State  `json:"state"`
	// Runs counts the times the step was started: more than one means it
	// was run again after a crash.
	Runs    int       `json:"runs"`
	Started time.Time `json:"started,omitzero"` // when the last run began
	Ended   time.Time `json:"ended,omitzero"`   // when it was recorded done or failed
	Error   string    `json:"error,omitempty"`  // why it failed
}

// ParseRecord decodes and checks a record. It rejects anything Run could
// not have written: an unknown version, a bad id, unknown states, or steps
// out of order (done steps first, then at most one started or failed step,
// then pending ones).
func ParseRecord(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	if err := r.check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (r *Record) check() error {
	if r.Version != version {
		return fmt.Errorf("record version %d, want %d", r.Version, version)
	}
	if err := checkID(r.ID); err != nil {
		return err
	}
	if len(r.Steps) == 0 {
		return errors.New("record has no steps")
	}
	// phase 0: done steps; 1: the one started or failed step; 2: pending.
	phase, failed := 0, 0
	for i, s := range r.Steps {
		if s.Name == "" {
			return fmt.Errorf("step %d has no name", i)
		}
		if s.Runs < 0 {
			return fmt.Errorf("step %d (%s): runs %d", i, s.Name, s.Runs)
		}
		var p int
		switch s.State {
		case Done:
			p = 0
		case Started, Failed:
			p = 1
		case Pending:
			p = 2
		default:
			return fmt.Errorf("step %d (%s): unknown state %q", i, s.Name, s.State)
		}
		if p < phase || (p == 1 && phase == 1) {
			return fmt.Errorf("step %d (%s) is %s after a step that is not done", i, s.Name, s.State)
		}
		phase = p
		if s.State == Failed {
			failed++
		}
	}
	switch r.State {
	case Running:
		if failed > 0 {
			return errors.New("running record has a failed step")
		}
		if phase == 0 {
			return errors.New("running record has every step done")
		}
	case Done:
		if phase != 0 {
			return errors.New("done record has a step not done")
		}
	case Failed:
		if failed != 1 {
			return errors.New("failed record has no failed step")
		}
	default:
		return fmt.Errorf("unknown record state %q", r.State)
	}
	return nil
}

// checkID keeps action ids usable as file names.
func checkID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("action id %q: want 1 to 128 characters", id)
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("action id %q: want letters, digits, '-', '_' or '.', not first", id)
		}
	}
	return nil
}
