package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nervehq/nerve/manager"
)

// Command times must fall in these years.
const minYear, maxYear = 1970, 9000

// NewCommand builds a command whose Body is the JSON of body (one of the
// manager command types, or nil for Expire). It checks the command as Decode
// would, so a bad command is refused before it reaches the log.
func NewCommand(op manager.Op, at time.Time, body any) (manager.Command, error) {
	c := manager.Command{Op: op, At: at}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return manager.Command{}, fmt.Errorf("encode %s body: %v: %w", op, err, manager.ErrBadRequest)
		}
		c.Body = b
	}
	if _, err := decodeBody(c); err != nil {
		return manager.Command{}, err
	}
	return c, nil
}

// Encode turns a command into the bytes of a log entry (JSON).
func Encode(c manager.Command) ([]byte, error) {
	if _, err := decodeBody(c); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %v: %w", c.Op, err, manager.ErrBadRequest)
	}
	return b, nil
}

// Decode reads the bytes of a log entry and checks the command: a known op,
// a time, and a body that decodes into the op's type with its required
// fields. Every error wraps manager.ErrBadRequest and names what is wrong.
// Unknown JSON fields are ignored, so replicas of an older version still
// apply entries written by a newer leader the same way.
func Decode(b []byte) (manager.Command, error) {
	c, _, err := decode(b)
	return c, err
}

func decode(b []byte) (manager.Command, any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return manager.Command{}, nil, fmt.Errorf("decode command: empty entry: %w", manager.ErrBadRequest)
	}
	var c manager.Command
	if err := json.Unmarshal(b, &c); err != nil {
		return manager.Command{}, nil, fmt.Errorf("decode command: %v: %w", err, manager.ErrBadRequest)
	}
	body, err := decodeBody(c)
	if err != nil {
		return manager.Command{}, nil, err
	}
	return c, body, nil
}

// decodeBody decodes and checks the body of c, returning a pointer to the
// op's type (nil for Expire).
func decodeBody(c manager.Command) (any, error) {
	if c.Op == "" {
		return nil, badf("command has no op")
	}
	if c.At.IsZero() {
		return nil, badf("%s command has no time (at)", c.Op)
	}
	if y := c.At.Year(); y < minYear || y > maxYear {
		// Expiries past year 9999 cannot be written as JSON: one such
		// grant would make every snapshot fail.
		return nil, badf("%s command time %s is not between years %d and %d", c.Op, c.At.Format(time.RFC3339), minYear, maxYear)
	}
	var body any
	switch c.Op {
	case manager.OpAcquire:
		body = new(manager.Acquire)
	case manager.OpRenew:
		body = new(manager.Renew)
	case manager.OpRelease:
		body = new(manager.Release)
	case manager.OpCheckpoint:
		body = new(manager.Checkpoint)
	case manager.OpHealthy:
		body = new(manager.Healthy)
	case manager.OpForceRelease:
		body = new(manager.ForceRelease)
	case manager.OpExpire:
		// Expire has no fields; any body that is JSON is accepted.
		if len(c.Body) > 0 {
			var e manager.Expire
			if err := json.Unmarshal(c.Body, &e); err != nil {
				return nil, badf("expire body: %v", err)
			}
		}
		return nil, nil
	case manager.OpSetGoals:
		body = new(manager.SetGoals)
	case manager.OpReport:
		body = new(manager.Report)
	case manager.OpRackConfig:
		body = new(manager.RackConfig)
	default:
		return nil, badf("unknown op %q", c.Op)
	}
	raw := bytes.TrimSpace(c.Body)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, badf("%s command has no body", c.Op)
	}
	if err := json.Unmarshal(raw, body); err != nil {
		return nil, badf("%s body: %v", c.Op, err)
	}
	if err := check(body); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Op, err)
	}
	return body, nil
}

// check validates the fields of a body; it needs no state.
func check(body any) error {
	switch b := body.(type) {
	case *manager.Acquire:
		if err := required("cluster", b.Cluster, "rack", b.Rack, "node", b.Node, "request_id", b.RequestID); err != nil {
			return err
		}
		if b.Lease < 0 {
			return badf("negative lease %s", b.Lease)
		}
	case *manager.Renew:
		if err := required("grant_id", b.GrantID); err != nil {
			return err
		}
		if b.Lease < 0 {
			return badf("negative lease %s", b.Lease)
		}
	case *manager.Release:
		return required("grant_id", b.GrantID)
	case *manager.Checkpoint:
		return required("grant_id", b.GrantID, "step", b.Step)
	case *manager.Healthy:
		return required("cluster", b.Cluster, "node", b.Node)
	case *manager.ForceRelease:
		return required("grant_id", b.GrantID, "reason", b.Reason, "by", b.By)
	case *manager.SetGoals:
		if !validLevel(b.Level) {
			return badf("unknown goals level %q (key %q), want one of %v", b.Level, b.Key, manager.Levels)
		}
		if b.Key == "" {
			return badf("goals at level %s have no key", b.Level)
		}
		if len(b.Document) > MaxDocumentBytes {
			return badf("goals document at level %s key %q is %d bytes, more than %d", b.Level, b.Key, len(b.Document), MaxDocumentBytes)
		}
		if b.Document != "" {
			if _, err := parseDocument(b.Document); err != nil {
				return badf("goals document at level %s key %q: %v", b.Level, b.Key, err)
			}
		}
	case *manager.Report:
		if err := required("node", b.Node, "id", b.ID); err != nil {
			return err
		}
		if len(b.Decision) > MaxDocumentBytes {
			return badf("report %q of node %q is %d bytes, more than %d", b.ID, b.Node, len(b.Decision), MaxDocumentBytes)
		}
	case *manager.RackConfig:
		if err := required("cluster", b.Cluster, "rack", b.Rack); err != nil {
			return err
		}
		if b.MaxHolders < 0 {
			return badf("negative max_holders %d for rack %s/%s", b.MaxHolders, b.Cluster, b.Rack)
		}
	}
	return nil
}

// required takes name, value pairs and names the first empty one.
func required(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			return badf("missing %s", kv[i])
		}
	}
	return nil
}

func badf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, manager.ErrBadRequest)...)
}
