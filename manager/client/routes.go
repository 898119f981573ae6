package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nervehq/nerve/manager"
)

// Acquire asks for a rack lock. Retried after any failure: the manager
// answers a repeat of (Node, RequestID) with the same grant. A refusal
// wraps manager.ErrRackBusy or manager.ErrRackFull.
func (c *Client) Acquire(ctx context.Context, a manager.Acquire) (manager.Grant, error) {
	var g manager.Grant
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/locks/acquire", in: a, out: &g, retry: safe})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("acquire rack lock %s/%s for %s: %w", a.Cluster, a.Rack, a.Node, err)
	}
	return g, nil
}

// Renew extends a lease. Retried after any failure: the token fences it, and
// a repeat that comes too late wraps manager.ErrStaleToken.
func (c *Client) Renew(ctx context.Context, r manager.Renew) (manager.Grant, error) {
	var g manager.Grant
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/locks/renew", in: r, out: &g, retry: safe})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("renew grant %s token %d: %w", r.GrantID, r.Token, err)
	}
	return g, nil
}

// Release gives a rack lock back. Retried after any failure; a repeat of a
// release that was applied wraps manager.ErrStaleToken, which callers
// releasing their own grant may take as done.
func (c *Client) Release(ctx context.Context, r manager.Release) (manager.Grant, error) {
	var g manager.Grant
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/locks/release", in: r, out: &g, retry: safe})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("release grant %s token %d: %w", r.GrantID, r.Token, err)
	}
	return g, nil
}

// Checkpoint records the step an action holding the lock has reached.
// Retried after any failure: recording the same step twice is the same.
func (c *Client) Checkpoint(ctx context.Context, cp manager.Checkpoint) (manager.Grant, error) {
	var g manager.Grant
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/locks/checkpoint", in: cp, out: &g, retry: safe})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("checkpoint grant %s token %d: %w", cp.GrantID, cp.Token, err)
	}
	return g, nil
}

// ForceRelease frees a grant by an operator's hand. Not retried once it may
// have been applied: a repeat would answer not_found for a release that
// happened; check with Locks instead.
func (c *Client) ForceRelease(ctx context.Context, f manager.ForceRelease) (manager.Grant, error) {
	var g manager.Grant
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/locks/force-release", in: f, out: &g, retry: once})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("force-release grant %s: %w", f.GrantID, err)
	}
	return g, nil
}

// Healthy tells the manager a node is up again, which frees its suspect
// grants. Retried after any failure: saying it twice frees nothing more.
func (c *Client) Healthy(ctx context.Context, h manager.Healthy) error {
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/nodes/healthy", in: h, retry: safe})
	if err != nil {
		return fmt.Errorf("report %s/%s healthy: %w", h.Cluster, h.Node, err)
	}
	return nil
}

// Locks lists the grants of a cluster, or of every cluster when cluster is
// "". A read: retried.
func (c *Client) Locks(ctx context.Context, cluster string) ([]manager.Grant, error) {
	var gs []manager.Grant
	q := url.Values{}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/locks", query: q, out: &gs, retry: safe})
	if err != nil {
		return nil, fmt.Errorf("list locks of %s: %w", cluster, err)
	}
	return gs, nil
}

// Validate checks at the leader that a grant still holds with this token; a
// grant that does not wraps manager.ErrStaleToken. A read: retried.
func (c *Client) Validate(ctx context.Context, grantID string, token uint64) (manager.Grant, error) {
	var g manager.Grant
	q := url.Values{"grant_id": {grantID}, "token": {strconv.FormatUint(token, 10)}}
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/locks/validate", query: q, out: &g, retry: safe})
	if err != nil {
		return manager.Grant{}, fmt.Errorf("validate grant %s token %d: %w", grantID, token, err)
	}
	return g, nil
}

// History returns up to limit events from index from on (0 for no limit),
// waiting up to wait for the first one when there is none yet (0 for no
// wait). A read: retried.
func (c *Client) History(ctx context.Context, from uint64, limit int, wait time.Duration) ([]manager.Event, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var evs []manager.Event
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/history", query: q, out: &evs, retry: safe, extra: wait})
	if err != nil {
		return nil, fmt.Errorf("history from %d: %w", from, err)
	}
	return evs, nil
}

// Follow calls fn with every event from index from on, in order, long
// polling for new ones, until ctx ends (then it returns nil) or fn returns
// an error (returned). A manager that cannot be reached is asked again
// after a pause; a refusal (unauthorized, bad request) ends Follow with it.
func (c *Client) Follow(ctx context.Context, from uint64, fn func(manager.Event) error) error {
	const wait = 30 * time.Second
	for {
		evs, err := c.History(ctx, from, 0, wait)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && isFinal(err):
			return err
		case err != nil:
			if sleep(ctx, c.maxBackoff) != nil {
				return nil
			}
			continue
		}
		for _, ev := range evs {
			if ev.Index < from {
				continue // a replica that counts from differently must not repeat an event
			}
			if err := fn(ev); err != nil {
				return err
			}
			from = ev.Index + 1
		}
	}
}

// isFinal says whether err is an answer that asking again will not change:
// a 4xx, or an answer that does not decode.
func isFinal(err error) bool {
	var api *APIError
	var dec *decodeError
	return (errors.As(err, &api) && api.Status >= 400 && api.Status < 500) || errors.As(err, &dec)
}

// Goals is a node's goals as the manager merges them.
type Goals struct {
	// Merged is the document the node runs on: every level's document
	// merged, the lower level winning field by field.
	Merged string `json:"merged"`
	// Levels holds each level's own document, for the levels that have one.
	Levels map[manager.Level]string `json:"levels"`
}

// SetGoals stores a goals document at one level; an empty document
// deletes it. Retried after any failure: storing the same document twice
// is the same (a concurrent writer's document may be overwritten either
// way: the last write wins).
func (c *Client) SetGoals(ctx context.Context, s manager.SetGoals) error {
	err := c.do(ctx, call{method: http.MethodPut, path: "/v1/goals", in: s, retry: safe})
	if err != nil {
		return fmt.Errorf("set goals %s %q: %w", s.Level, s.Key, err)
	}
	return nil
}

// Goals fetches the merged goals of a place in the hierarchy. A read: retried.
func (c *Client) Goals(ctx context.Context, w manager.Where) (Goals, error) {
	q := url.Values{}
	for k, v := range map[string]string{"cluster": w.Cluster, "environment": w.Environment, "region": w.Region,
		"zone": w.Zone, "rack": w.Rack, "node": w.Node} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var g Goals
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/goals", query: q, out: &g, retry: safe})
	if err != nil {
		return Goals{}, fmt.Errorf("get goals: %w", err)
	}
	return g, nil
}

// Report stores an agent's decision report. Not retried once it may have
// been applied: a repeat would show the decision twice in the history.
func (c *Client) Report(ctx context.Context, r manager.Report) error {
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/reports", in: r, retry: once})
	if err != nil {
		return fmt.Errorf("report decision %s of %s: %w", r.ID, r.Node, err)
	}
	return nil
}

// Reports lists a node's decision reports. A read: retried.
func (c *Client) Reports(ctx context.Context, node string) ([]manager.Report, error) {
	var rs []manager.Report
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/reports", query: url.Values{"node": {node}}, out: &rs, retry: safe})
	if err != nil {
		return nil, fmt.Errorf("reports of %s: %w", node, err)
	}
	return rs, nil
}

// Status is one replica's view of the cluster of replicas.
type Status struct {
	ID           string `json:"id"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader"`
	LeaderHTTP   string `json:"leader_http"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Peers        []Peer `json:"peers"`
}

// Peer is a replica: its Raft ID, its Raft address and its API address.
type Peer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	HTTP     string `json:"http,omitempty"`
	Suffrage string `json:"suffrage,omitempty"`
}

// UnmarshalJSON takes a peer as an object, or as a bare string (its ID).
func (p *Peer) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		*p = Peer{ID: s}
		return nil
	}
	type plain Peer
	return json.Unmarshal(data, (*plain)(p))
}

// Status asks the replica that answers first (the one that answered last,
// else the first endpoint) for its view; it is not forwarded to the leader.
// A read: retried.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/status", out: &s, retry: safe}); err != nil {
		return Status{}, fmt.Errorf("manager status: %w", err)
	}
	return s, nil
}

// Join adds a replica to the cluster. Not retried once it may have been
// applied: ask Status whether it was.
func (c *Client) Join(ctx context.Context, p Peer) error {
	body := struct {
		ID      string `json:"id"`
		Address string `json:"address"`
		HTTP    string `json:"http"`
	}{p.ID, p.Address, p.HTTP}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/peers/join", in: body, retry: once}); err != nil {
		return fmt.Errorf("join %s at %s: %w", p.ID, p.Address, err)
	}
	return nil
}

// Remove takes a replica out of the cluster. Not retried once it may have
// been applied: ask Status whether it was.
func (c *Client) Remove(ctx context.Context, id string) error {
	body := struct {
		ID string `json:"id"`
	}{id}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/peers/remove", in: body, retry: once}); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}
