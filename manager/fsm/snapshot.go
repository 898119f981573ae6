package fsm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/nervehq/nerve/manager"
)

// snapshotVersion is the format of the snapshot JSON; Restore refuses others.
const snapshotVersion = 1

// snapshotData is the whole state, in a form whose JSON is deterministic.
type snapshotData struct {
	Version   int                         `json:"version"`
	LastIndex uint64                      `json:"last_index"`
	MaxToken  uint64                      `json:"max_token"`
	Grants    []manager.Grant             `json:"grants"`            // by token
	Released  []string                    `json:"released"`          // oldest release first
	Refused   []refusedAcquire            `json:"refused,omitempty"` // oldest first
	Racks     []rackLimit                 `json:"racks"`
	Goals     []goalDoc                   `json:"goals"`
	Reports   map[string][]manager.Report `json:"reports"`
	Events    []manager.Event             `json:"events"`
}

type refusedAcquire struct {
	Node      string `json:"node"`
	RequestID string `json:"request_id"`
	Full      bool   `json:"full,omitempty"` // else busy
	Detail    string `json:"detail"`
}

type rackLimit struct {
	Cluster    string `json:"cluster"`
	Rack       string `json:"rack"`
	MaxHolders int    `json:"max_holders"`
}

type goalDoc struct {
	Level    manager.Level `json:"level"`
	Key      string        `json:"key"`
	Document string        `json:"document"`
}

// snapshot is a copy of the state taken under the lock; Persist encodes it.
// Nothing in it is shared with the live state except values never changed
// after they are written (events' grants, reports' decisions).
type snapshot struct{ d snapshotData }

// Snapshot copies the state under the read lock and returns at once; the
// encoding and the I/O happen in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	d := snapshotData{
		Version:   snapshotVersion,
		LastIndex: s.lastIndex,
		MaxToken:  s.maxToken,
		Grants:    make([]manager.Grant, 0, len(s.grants)),
		Released:  slices.Clone(s.released),
		Racks:     make([]rackLimit, 0, len(s.racks)),
		Goals:     make([]goalDoc, 0, len(s.goals)),
		Reports:   make(map[string][]manager.Report, len(s.reports)),
		Events:    slices.Clone(s.events),
	}
	for _, g := range s.grants {
		d.Grants = append(d.Grants, *g)
	}
	for _, rk := range s.refusedOrder {
		r := s.refused[rk]
		d.Refused = append(d.Refused, refusedAcquire{Node: rk.node, RequestID: rk.requestID, Full: r.full, Detail: r.detail})
	}
	for k, n := range s.racks {
		d.Racks = append(d.Racks, rackLimit{k.cluster, k.rack, n})
	}
	for k, doc := range s.goals {
		d.Goals = append(d.Goals, goalDoc{k.level, k.key, doc})
	}
	for node, rs := range s.reports {
		d.Reports[node] = slices.Clone(rs)
	}
	return &snapshot{d: d}, nil
}

// Persist sorts and writes the copy as JSON.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	d := &s.d
	slices.SortFunc(d.Grants, func(x, y manager.Grant) int { return cmp.Compare(x.Token, y.Token) })
	slices.SortFunc(d.Racks, func(x, y rackLimit) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Rack, y.Rack))
	})
	slices.SortFunc(d.Goals, func(x, y goalDoc) int {
		return cmp.Or(cmp.Compare(x.Level, y.Level), cmp.Compare(x.Key, y.Key))
	})
	if err := json.NewEncoder(sink).Encode(d); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release does nothing: the copy is garbage once unreferenced.
func (s *snapshot) Release() {}

// Restore replaces the whole state with the snapshot in rc, and closes rc.
// The snapshot is checked first; on error the state is left as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("restore: decode snapshot: %w", err)
	}
	s, err := f.build(&d)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
	return nil
}

// build checks a decoded snapshot and makes a state of it.
func (f *FSM) build(d *snapshotData) (*state, error) {
	if d.Version != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d, want %d", d.Version, snapshotVersion)
	}
	s := newState()
	s.lastIndex, s.maxToken = d.LastIndex, d.MaxToken
	tokens := map[uint64]bool{}
	for i := range d.Grants {
		g := d.Grants[i]
		switch {
		case g.ID == "":
			return nil, fmt.Errorf("grant with token %d has no id", g.Token)
		case s.grants[g.ID] != nil:
			return nil, fmt.Errorf("grant %s twice", g.ID)
		case g.Token == 0 || g.Token > d.MaxToken:
			return nil, fmt.Errorf("grant %s: token %d not in 1..%d", g.ID, g.Token, d.MaxToken)
		case tokens[g.Token]:
			return nil, fmt.Errorf("grant %s: token %d used twice", g.ID, g.Token)
		}
		tokens[g.Token] = true
		rk := requestKey{g.Node, g.RequestID}
		if id, ok := s.byRequest[rk]; ok {
			return nil, fmt.Errorf("grants %s and %s have the same node %q and request %q", id, g.ID, g.Node, g.RequestID)
		}
		p := &g
		s.grants[g.ID] = p
		s.byRequest[rk] = g.ID
		switch g.State {
		case manager.Held, manager.Suspect:
			s.active[g.ID] = p
		case manager.Released:
		default:
			return nil, fmt.Errorf("grant %s: unknown state %q", g.ID, g.State)
		}
	}
	seen := map[string]bool{}
	for _, id := range d.Released {
		g, ok := s.grants[id]
		if !ok || g.State != manager.Released || seen[id] {
			return nil, fmt.Errorf("released list: %s is not a released grant, or is listed twice", id)
		}
		seen[id] = true
	}
	if len(seen) != len(s.grants)-len(s.active) {
		return nil, fmt.Errorf("released list has %d grants, snapshot has %d released", len(seen), len(s.grants)-len(s.active))
	}
	s.released = slices.Clone(d.Released)
	for len(s.released) > f.maxReleased {
		old := s.grants[s.released[0]]
		delete(s.byRequest, requestKey{old.Node, old.RequestID})
		delete(s.grants, old.ID)
		s.released = s.released[1:]
	}
	for _, r := range d.Refused {
		rk := requestKey{r.Node, r.RequestID}
		if _, ok := s.refused[rk]; ok {
			return nil, fmt.Errorf("refused acquire of node %q request %q listed twice", r.Node, r.RequestID)
		}
		if _, ok := s.byRequest[rk]; ok {
			return nil, fmt.Errorf("acquire of node %q request %q both refused and granted", r.Node, r.RequestID)
		}
		s.refused[rk] = refusal{full: r.Full, detail: r.Detail}
		s.refusedOrder = append(s.refusedOrder, rk)
	}
	for len(s.refusedOrder) > f.maxRefused {
		delete(s.refused, s.refusedOrder[0])
		s.refusedOrder = s.refusedOrder[1:]
	}
	for _, r := range d.Racks {
		if r.MaxHolders < 1 {
			return nil, fmt.Errorf("rack %s/%s: max holders %d", r.Cluster, r.Rack, r.MaxHolders)
		}
		s.racks[rackKey{r.Cluster, r.Rack}] = r.MaxHolders
	}
	for _, g := range d.Goals {
		if !validLevel(g.Level) {
			return nil, fmt.Errorf("goals: unknown level %q (key %q)", g.Level, g.Key)
		}
		if _, err := parseDocument(g.Document); err != nil {
			return nil, fmt.Errorf("goals at level %s key %q: %w", g.Level, g.Key, err)
		}
		s.goals[goalKey{g.Level, g.Key}] = g.Document
	}
	for node, rs := range d.Reports {
		if n := len(rs) - f.maxReports; n > 0 {
			rs = rs[n:]
		}
		if len(rs) > 0 {
			s.reports[node] = slices.Clone(rs)
		}
	}
	for i := 1; i < len(d.Events); i++ {
		if d.Events[i].Index < d.Events[i-1].Index {
			return nil, fmt.Errorf("events out of order at %d", i)
		}
	}
	if n := len(d.Events) - f.maxEvents; n > 0 {
		d.Events = d.Events[n:]
	}
	s.events = d.Events
	return s, nil
}
