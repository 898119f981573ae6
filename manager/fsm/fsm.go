package fsm

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nervehq/nerve/manager"
)

// Limits. They shape the state every replica keeps, so they are constants,
// never settings: two replicas with different limits would diverge.
const (
	DefaultLease      = 60 * time.Second // an Acquire or Renew with no lease
	MaxLease          = time.Hour        // longer leases are cut to this
	DefaultMaxHolders = 1                // holders of one rack unless RackConfig says otherwise
	MaxEvents         = 100_000          // history kept in memory and in snapshots
	MaxReportsPerNode = 100              // reports kept per node
	MaxReleasedGrants = 10_000           // released grants kept (for Grant and idempotent Acquire)
	MaxRefusedAcquire = 10_000           // refused acquires kept (for idempotent Acquire)
	MaxDocumentBytes  = 1 << 20          // largest goals document or report decision
)

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.FSMSnapshot = (*snapshot)(nil)
)

// FSM is the state machine. Apply, Snapshot and Restore are called by raft
// from one goroutine; the reads may be called from any goroutine.
type FSM struct {
	mu sync.RWMutex
	s  *state // guarded by mu; Restore swaps it whole

	// Limits, fixed by New; tests lower them to reach the bounds.
	maxEvents, maxReports, maxReleased, maxRefused int
}

// state is everything the log builds. Pointers in grants and active are
// shared: active holds the held and suspect grants of grants.
type state struct {
	lastIndex uint64                    // index of the last applied entry
	maxToken  uint64                    // last token given; never goes down
	grants    map[string]*manager.Grant // every grant not yet forgotten, by ID
	active    map[string]*manager.Grant // held and suspect grants, by ID
	byRequest map[requestKey]string     // (node, request ID) -> grant ID
	released  []string                  // IDs of released grants, oldest release first
	// refused holds the refused acquires, so that a repeat of one is
	// refused again rather than granted: a request delayed in the network
	// (a forward stuck in a partition, retransmitted after it heals) may be
	// applied after the client, told "busy", has moved on, and a grant no
	// one knows of would lock the cluster. refusedOrder is oldest first.
	refused      map[requestKey]refusal
	refusedOrder []requestKey
	racks        map[rackKey]int    // max holders, when not DefaultMaxHolders
	goals        map[goalKey]string // goals documents
	reports      map[string][]manager.Report
	events       []manager.Event // the last events; an event's Grant is never changed once appended
}

type requestKey struct{ node, requestID string }

// refusal is why an acquire was refused: busy (another rack holds the
// cluster) or full (the rack has its holders), and the message.
type refusal struct {
	full   bool
	detail string
}
type rackKey struct{ cluster, rack string }
type goalKey struct {
	level manager.Level
	key   string
}

func newState() *state {
	return &state{
		grants:    map[string]*manager.Grant{},
		active:    map[string]*manager.Grant{},
		byRequest: map[requestKey]string{},
		refused:   map[requestKey]refusal{},
		racks:     map[rackKey]int{},
		goals:     map[goalKey]string{},
		reports:   map[string][]manager.Report{},
	}
}

// New returns an empty state machine.
func New() *FSM {
	return &FSM{
		s:           newState(),
		maxEvents:   MaxEvents,
		maxReports:  MaxReportsPerNode,
		maxReleased: MaxReleasedGrants,
		maxRefused:  MaxRefusedAcquire,
	}
}

// Result is what Apply returns (as *Result) for every entry: the grant the
// command acted on, if any, the error (wrapping one of manager's sentinel
// errors), and the events the command appended to the history.
type Result struct {
	Grant  *manager.Grant
	Err    error
	Events []manager.Event
}

// Apply applies one log entry. It never panics: a bad entry gives a Result
// whose Err wraps manager.ErrBadRequest and changes nothing but LastIndex.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if l == nil {
		return &Result{Err: badf("nil log entry")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index > f.s.lastIndex {
		f.s.lastIndex = l.Index
	}
	c, body, err := decode(l.Data)
	if err != nil {
		return &Result{Err: fmt.Errorf("entry %d: %w", l.Index, err)}
	}
	a := &applier{f: f, s: f.s, index: l.Index, at: c.At, r: &Result{}}
	a.apply(c.Op, body)
	return a.r
}

// applier applies one command.
type applier struct {
	f     *FSM
	s     *state
	index uint64
	at    time.Time
	r     *Result
}

func (a *applier) apply(op manager.Op, body any) {
	defer func() {
		// Every replica applies the same entry the same way, so a bug here
		// would stop them all; refuse the entry instead.
		if p := recover(); p != nil {
			a.r.Err = fmt.Errorf("entry %d: %s: internal error: %v", a.index, op, p)
		}
	}()
	switch b := body.(type) {
	case *manager.Acquire:
		a.acquire(b)
	case *manager.Renew:
		a.renew(b)
	case *manager.Release:
		a.release(b)
	case *manager.Checkpoint:
		a.checkpoint(b)
	case *manager.Healthy:
		a.healthy(b)
	case *manager.ForceRelease:
		a.forceRelease(b)
	case *manager.SetGoals:
		a.setGoals(b)
	case *manager.Report:
		a.report(b)
	case *manager.RackConfig:
		a.rackConfig(b)
	case nil:
		if op == manager.OpExpire {
			a.expire()
			return
		}
		a.r.Err = badf("%s command has no body", op)
	default:
		a.r.Err = badf("unhandled op %q", op)
	}
}

// emit appends an event; g is copied, so the history never changes after.
func (a *applier) emit(kind string, g *manager.Grant, detail string) {
	e := manager.Event{Index: a.index, At: a.at, Kind: kind, Detail: detail}
	if g != nil {
		c := *g
		e.Grant = &c
	}
	s := a.s
	s.events = append(s.events, e)
	if n := len(s.events) - a.f.maxEvents; n > 0 {
		s.events = s.events[n:]
	}
	a.r.Events = append(a.r.Events, e)
}

func (a *applier) result(g *manager.Grant) {
	c := *g
	a.r.Grant = &c
}

func lease(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return DefaultLease
	case d > MaxLease:
		return MaxLease
	}
	return d
}

// activeSorted returns the held and suspect grants by token, the order every
// loop over them uses so that replicas agree.
func (s *state) activeSorted() []*manager.Grant {
	gs := make([]*manager.Grant, 0, len(s.active))
	for _, g := range s.active {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(x, y *manager.Grant) int { return cmp.Compare(x.Token, y.Token) })
	return gs
}

func (s *state) maxHolders(cluster, rack string) int {
	if n, ok := s.racks[rackKey{cluster, rack}]; ok {
		return n
	}
	return DefaultMaxHolders
}

func (a *applier) acquire(b *manager.Acquire) {
	s := a.s
	rk := requestKey{b.Node, b.RequestID}
	if id, ok := s.byRequest[rk]; ok {
		a.result(s.grants[id])
		return
	}
	if r, ok := s.refused[rk]; ok {
		// One request, one answer: a repeat of a refused acquire is
		// refused again, whatever the racks hold now.
		a.refuse(rk, r.full, r.detail+" (a repeat of a refused request)")
		return
	}
	holders := 0
	for _, g := range s.activeSorted() {
		if g.Cluster != b.Cluster {
			continue
		}
		if g.Rack != b.Rack {
			a.refuse(rk, false, fmt.Sprintf("node %s request %s: rack %s/%s busy: rack %s holds %s (%s)",
				b.Node, b.RequestID, b.Cluster, b.Rack, g.Rack, g.ID, g.State))
			return
		}
		holders++
	}
	if max := s.maxHolders(b.Cluster, b.Rack); holders >= max {
		a.refuse(rk, true, fmt.Sprintf("node %s request %s: rack %s/%s full: %d of %d holders",
			b.Node, b.RequestID, b.Cluster, b.Rack, holders, max))
		return
	}
	s.maxToken++
	g := &manager.Grant{
		ID:        fmt.Sprintf("g-%d", s.maxToken),
		Token:     s.maxToken,
		Cluster:   b.Cluster,
		Rack:      b.Rack,
		Node:      b.Node,
		Operation: b.Operation,
		RequestID: b.RequestID,
		State:     manager.Held,
		Granted:   a.at,
		Expires:   a.at.Add(lease(b.Lease)),
	}
	s.grants[g.ID] = g
	s.active[g.ID] = g
	s.byRequest[requestKey{g.Node, g.RequestID}] = g.ID
	a.emit("grant", g, "")
	a.result(g)
}

// refuse answers an acquire with a refusal (busy, or full), records it in
// the history, and remembers it for repeats of the request, forgetting the
// oldest beyond the bound.
func (a *applier) refuse(rk requestKey, full bool, detail string) {
	s := a.s
	a.emit("refuse", nil, detail)
	sentinel := manager.ErrRackBusy
	if full {
		sentinel = manager.ErrRackFull
	}
	a.r.Err = fmt.Errorf("acquire for node %s: %s: %w", rk.node, detail, sentinel)
	if _, ok := s.refused[rk]; ok {
		return
	}
	s.refused[rk] = refusal{full: full, detail: detail}
	s.refusedOrder = append(s.refusedOrder, rk)
	for len(s.refusedOrder) > a.f.maxRefused {
		delete(s.refused, s.refusedOrder[0])
		s.refusedOrder = s.refusedOrder[1:]
	}
}

// live returns the grant id if it is not released and its token is token.
func (a *applier) live(op manager.Op, id string, token uint64) (*manager.Grant, bool) {
	g, ok := a.s.grants[id]
	switch {
	case !ok:
		a.r.Err = fmt.Errorf("%s %s: unknown grant: %w", op, id, manager.ErrStaleToken)
	case g.State == manager.Released:
		a.r.Err = fmt.Errorf("%s %s: grant released: %w", op, id, manager.ErrStaleToken)
	case g.Token != token:
		a.r.Err = fmt.Errorf("%s %s: token %d, grant has %d: %w", op, id, token, g.Token, manager.ErrStaleToken)
	default:
		return g, true
	}
	return nil, false
}

// renew extends a lease. A suspect grant renewed with its token turns held
// again: only its holder knows the token, suspect never freed the rack, and
// a node back from a long pause should not need an operator.
func (a *applier) renew(b *manager.Renew) {
	g, ok := a.live(manager.OpRenew, b.GrantID, b.Token)
	if !ok {
		return
	}
	detail := ""
	if g.State == manager.Suspect {
		g.State = manager.Held
		detail = "back from suspect"
	}
	g.Expires = a.at.Add(lease(b.Lease))
	a.emit("renew", g, detail)
	a.result(g)
}

func (a *applier) release(b *manager.Release) {
	g, ok := a.live(manager.OpRelease, b.GrantID, b.Token)
	if !ok {
		return
	}
	a.free(g)
	a.emit("release", g, "")
	a.result(g)
}

// free releases g and forgets the oldest released grants beyond the bound.
func (a *applier) free(g *manager.Grant) {
	s := a.s
	g.State = manager.Released
	delete(s.active, g.ID)
	s.released = append(s.released, g.ID)
	for len(s.released) > a.f.maxReleased {
		old := s.grants[s.released[0]]
		delete(s.byRequest, requestKey{old.Node, old.RequestID})
		delete(s.grants, old.ID)
		s.released = s.released[1:]
	}
}

func (a *applier) checkpoint(b *manager.Checkpoint) {
	g, ok := a.live(manager.OpCheckpoint, b.GrantID, b.Token)
	if !ok {
		return
	}
	g.Step = b.Step
	a.emit("checkpoint", g, b.Step)
	a.result(g)
}

func (a *applier) healthy(b *manager.Healthy) {
	for _, g := range a.s.activeSorted() {
		if g.State == manager.Suspect && g.Cluster == b.Cluster && g.Node == b.Node {
			a.free(g)
			a.emit("healthy", g, "node reported healthy")
		}
	}
}

// forceRelease frees a held or suspect grant. Forcing a released grant again
// returns it with no error and no event, so an operator may retry.
func (a *applier) forceRelease(b *manager.ForceRelease) {
	g, ok := a.s.grants[b.GrantID]
	if !ok {
		a.r.Err = fmt.Errorf("force release %s: %w", b.GrantID, manager.ErrNotFound)
		return
	}
	if g.State != manager.Released {
		a.free(g)
		a.emit("force_release", g, fmt.Sprintf("by %s: %s", b.By, b.Reason))
	}
	a.result(g)
}

// expire turns suspect every held grant whose lease ended at or before At.
func (a *applier) expire() {
	for _, g := range a.s.activeSorted() {
		if g.State == manager.Held && !g.Expires.After(a.at) {
			g.State = manager.Suspect
			a.emit("suspect", g, "lease expired "+g.Expires.UTC().Format(time.RFC3339Nano))
		}
	}
}

func (a *applier) setGoals(b *manager.SetGoals) {
	k := goalKey{b.Level, b.Key}
	if b.Document == "" {
		delete(a.s.goals, k)
		a.emit("goals", nil, fmt.Sprintf("%s %s deleted", b.Level, b.Key))
		return
	}
	a.s.goals[k] = b.Document
	a.emit("goals", nil, fmt.Sprintf("%s %s set", b.Level, b.Key))
}

// report keeps a node's report; a report whose ID the node's kept reports
// already have is a retry and changes nothing.
func (a *applier) report(b *manager.Report) {
	s := a.s
	rs := s.reports[b.Node]
	for _, r := range rs {
		if r.ID == b.ID {
			return
		}
	}
	rs = append(rs, *b)
	if n := len(rs) - a.f.maxReports; n > 0 {
		rs = slices.Clone(rs[n:])
	}
	s.reports[b.Node] = rs
	a.emit("decision", nil, fmt.Sprintf("node %s report %s", b.Node, b.ID))
}

// rackConfig sets a rack's holder limit; 0 restores the default. Lowering
// it below the current holders evicts nobody: new grants wait.
func (a *applier) rackConfig(b *manager.RackConfig) {
	k := rackKey{b.Cluster, b.Rack}
	if b.MaxHolders == 0 || b.MaxHolders == DefaultMaxHolders {
		delete(a.s.racks, k)
	} else {
		a.s.racks[k] = b.MaxHolders
	}
	a.emit("rack_config", nil, fmt.Sprintf("%s/%s max holders %d", b.Cluster, b.Rack, a.s.maxHolders(b.Cluster, b.Rack)))
}

// Locks returns the held and suspect grants of cluster (of every cluster
// when cluster is ""), ordered by cluster, rack, then token.
func (f *FSM) Locks(cluster string) []manager.Grant {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []manager.Grant{}
	for _, g := range f.s.active {
		if cluster == "" || g.Cluster == cluster {
			out = append(out, *g)
		}
	}
	slices.SortFunc(out, func(x, y manager.Grant) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Rack, y.Rack), cmp.Compare(x.Token, y.Token))
	})
	return out
}

// Grant returns a grant by ID, in any state, unless it was released long
// enough ago to be forgotten (see MaxReleasedGrants).
func (f *FSM) Grant(id string) (manager.Grant, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.s.grants[id]
	if !ok {
		return manager.Grant{}, false
	}
	return *g, true
}

// Validate checks a fencing token: the grant must be held (not suspect, not
// released) and carry token. Otherwise the error wraps manager.ErrStaleToken;
// the grant is returned when it exists, to explain the refusal.
func (f *FSM) Validate(grantID string, token uint64) (manager.Grant, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.s.grants[grantID]
	switch {
	case !ok:
		return manager.Grant{}, fmt.Errorf("grant %s: unknown: %w", grantID, manager.ErrStaleToken)
	case g.State != manager.Held:
		return *g, fmt.Errorf("grant %s: %s: %w", grantID, g.State, manager.ErrStaleToken)
	case g.Token != token:
		return *g, fmt.Errorf("grant %s: token %d, grant has %d: %w", grantID, token, g.Token, manager.ErrStaleToken)
	}
	return *g, nil
}

// History returns the kept events with Index >= from, in log order, at most
// limit of them (all kept events when limit <= 0). Only the last MaxEvents
// events are kept.
func (f *FSM) History(from uint64, limit int) []manager.Event {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ev := f.s.events
	i := sort.Search(len(ev), func(i int) bool { return ev[i].Index >= from })
	ev = ev[i:]
	if limit > 0 && len(ev) > limit {
		ev = ev[:limit]
	}
	out := make([]manager.Event, len(ev))
	for i, e := range ev {
		if e.Grant != nil {
			g := *e.Grant
			e.Grant = &g
		}
		out[i] = e
	}
	return out
}

// LastIndex is the index of the last entry applied (or restored).
func (f *FSM) LastIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.lastIndex
}

// Reports returns the last limit reports of node (all kept, at most
// MaxReportsPerNode, when limit <= 0), oldest first.
func (f *FSM) Reports(node string, limit int) []manager.Report {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rs := f.s.reports[node]
	if limit > 0 && len(rs) > limit {
		rs = rs[len(rs)-limit:]
	}
	out := make([]manager.Report, len(rs))
	for i, r := range rs {
		r.Decision = slices.Clone(r.Decision)
		out[i] = r
	}
	return out
}
