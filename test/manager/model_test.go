package manager_test

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/nervehq/nerve/manager"
)

// What an agent did, as the linearizability checker sees it.
const (
	opAcquire  = "acquire"
	opRelease  = "release"
	opValidate = "validate"

	resOK      = "ok"
	resBusy    = "rack_busy"
	resFull    = "rack_full"
	resStale   = "stale_token"
	resUnknown = "unknown" // an error: the request may or may not have been applied
)

// lockInput is one call of an agent.
type lockInput struct {
	Kind  string
	Node  string
	Rack  string
	Limit int    // the rack's max holders (acquire)
	Req   string // request ID (acquire)
	Grant string // grant ID (release, validate)
	Token uint64 // (release, validate)
}

// lockOutput is its answer.
type lockOutput struct {
	Result string
	Grant  string // acquire ok
	Token  uint64 // acquire ok
}

// rawOp is one attempt as it happened, times in ns since the recorder began.
type rawOp struct {
	client    int
	in        lockInput
	out       lockOutput
	call, ret int64
}

// recorder collects attempts from every agent.
type recorder struct {
	start time.Time

	mu    sync.Mutex
	ops   []rawOp      // guarded by mu
	stops []stopPeriod // guarded by mu
}

// stopPeriod is when a node was "stopped" under the lock.
type stopPeriod struct {
	node, rack string
	from, to   int64
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *recorder) add(op rawOp) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) stopped(p stopPeriod) {
	r.mu.Lock()
	r.stops = append(r.stops, p)
	r.mu.Unlock()
}

// lockState is the model's state: the fencing token last given and the
// grants held or suspect, in token order, encoded "id|rack|h" or
// "id|rack|s" and joined by ";" so that states compare with ==.
type lockState struct {
	max    uint64
	active string
}

type activeGrant struct{ id, rack, state string }

func (s lockState) grants() []activeGrant {
	if s.active == "" {
		return nil
	}
	var out []activeGrant
	for _, e := range strings.Split(s.active, ";") {
		f := strings.Split(e, "|")
		out = append(out, activeGrant{f[0], f[1], f[2]})
	}
	return out
}

func encode(max uint64, gs []activeGrant) lockState {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.id + "|" + g.rack + "|" + g.state
	}
	return lockState{max: max, active: strings.Join(parts, ";")}
}

// lockModel is the rack lock of one cluster as a sequential object: an
// acquire by a node of rack R succeeds only when no other rack holds and R
// has fewer holders than its limit, with a token above every earlier one;
// a refusal is right only when that is not so; release frees; validate
// succeeds only on a held grant. A lease that lapses turns a grant suspect
// at some moment the model does not see, so a stale validate of a held
// grant is allowed and makes it suspect: it never answers ok again.
var lockModel = porcupine.Model{
	Init: func() any { return lockState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(lockState), input.(lockInput), output.(lockOutput)
		gs := s.grants()
		find := func(id string) int {
			for i, g := range gs {
				if g.id == id {
					return i
				}
			}
			return -1
		}
		switch in.Kind {
		case opAcquire:
			other, same := false, 0
			for _, g := range gs {
				if g.rack != in.Rack {
					other = true
				} else {
					same++
				}
			}
			switch out.Result {
			case resOK:
				if other || same >= in.Limit || out.Token <= s.max {
					return false, s
				}
				return true, encode(out.Token, append(gs[:len(gs):len(gs)], activeGrant{out.Grant, in.Rack, "h"}))
			case resBusy:
				return other, s
			case resFull:
				return !other && same >= in.Limit, s
			}
		case opRelease:
			i := find(in.Grant)
			switch out.Result {
			case resOK:
				if i < 0 {
					return false, s
				}
				return true, encode(s.max, append(gs[:i:i], gs[i+1:]...))
			case resStale:
				// The client retries a release whose answer it lost, and a
				// repeat of one applied is refused as stale: either way the
				// grant is free after.
				if i >= 0 {
					return true, encode(s.max, append(gs[:i:i], gs[i+1:]...))
				}
				return true, s
			}
		case opValidate:
			i := find(in.Grant)
			switch out.Result {
			case resOK:
				return i >= 0 && gs[i].state == "h", s
			case resStale:
				if i >= 0 && gs[i].state == "h" {
					gs = append([]activeGrant(nil), gs...)
					gs[i].state = "s"
					return true, encode(s.max, gs)
				}
				return true, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(lockInput), output.(lockOutput)
		switch in.Kind {
		case opAcquire:
			if out.Result == resOK {
				return fmt.Sprintf("acquire(%s/%s %s) -> %s token %d", in.Rack, in.Node, in.Req, out.Grant, out.Token)
			}
			return fmt.Sprintf("acquire(%s/%s %s) -> %s", in.Rack, in.Node, in.Req, out.Result)
		default:
			return fmt.Sprintf("%s(%s %s token %d) -> %s", in.Kind, in.Node, in.Grant, in.Token, out.Result)
		}
	},
	DescribeState: func(state any) string {
		s := state.(lockState)
		return fmt.Sprintf("max token %d; %s", s.max, s.active)
	},
}

// history turns the attempts into the operations the checker takes. An
// attempt that failed (unknown) and the attempts that repeat it (the same
// acquire request, or the release of the same grant) are one operation,
// from the first call to the answer that settled it: the manager applies a
// repeat of an applied acquire as the same grant, so the one effect lies in
// that span. An operation never settled is looked up in the manager's
// history: applied, it may have taken effect any time after its call (it
// never returns); not applied, it changed nothing and is dropped.
func history(ops []rawOp, events []manager.Event) (out []porcupine.Operation, unresolved int) {
	granted := map[string]manager.Grant{} // by node + "/" + request ID
	released := map[string]bool{}
	for _, e := range events {
		if e.Grant == nil {
			continue
		}
		switch e.Kind {
		case "grant":
			granted[e.Grant.Node+"/"+e.Grant.RequestID] = *e.Grant
		case "release":
			released[e.Grant.ID] = true
		}
	}
	byClient := map[int][]rawOp{}
	for _, op := range ops {
		byClient[op.client] = append(byClient[op.client], op)
	}
	clients := make([]int, 0, len(byClient))
	for c := range byClient {
		clients = append(clients, c)
	}
	sort.Ints(clients)
	key := func(in lockInput) string { return in.Kind + " " + in.Req + " " + in.Grant }
	for _, c := range clients {
		var pending *rawOp
		settle := func() {
			if pending == nil {
				return
			}
			p := *pending
			pending = nil
			switch p.in.Kind {
			case opAcquire:
				g, ok := granted[p.in.Node+"/"+p.in.Req]
				if !ok {
					return
				}
				p.out = lockOutput{Result: resOK, Grant: g.ID, Token: g.Token}
			case opRelease:
				if !released[p.in.Grant] {
					return
				}
				p.out = lockOutput{Result: resOK}
			default:
				return
			}
			unresolved++
			p.ret = math.MaxInt64
			out = append(out, operation(p))
		}
		for _, op := range byClient[c] {
			if pending != nil && key(pending.in) != key(op.in) {
				settle()
			}
			if op.out.Result == resUnknown {
				if pending == nil {
					p := op
					pending = &p
				}
				continue
			}
			if pending != nil {
				op.call = pending.call
				pending = nil
			}
			out = append(out, operation(op))
		}
		settle()
	}
	return out, unresolved
}

func operation(op rawOp) porcupine.Operation {
	return porcupine.Operation{ClientId: op.client, Input: op.in, Call: op.call, Output: op.out, Return: op.ret}
}

// checkEvents replays the manager's history: holders (held or suspect) of
// a cluster belong to one rack at every index, tokens strictly increase
// with the index, and the events come in index order. It returns the
// grants and releases it saw, and the grants still held or suspect at the
// end.
func checkEvents(events []manager.Event) (grants map[string]manager.Grant, releases map[string]bool, left []manager.Grant, refusals int, errs []string) {
	grants = map[string]manager.Grant{}
	releases = map[string]bool{}
	active := map[string]manager.Grant{}
	var lastIndex, lastToken uint64
	for _, e := range events {
		if e.Index < lastIndex {
			errs = append(errs, fmt.Sprintf("index %d after %d", e.Index, lastIndex))
		}
		lastIndex = e.Index
		switch e.Kind {
		case "refuse":
			refusals++
		case "grant":
			g := *e.Grant
			if g.Token <= lastToken {
				errs = append(errs, fmt.Sprintf("index %d: grant %s token %d not above the last token %d", e.Index, g.ID, g.Token, lastToken))
			}
			lastToken = max(lastToken, g.Token)
			for _, h := range active {
				if h.Cluster == g.Cluster && h.Rack != g.Rack {
					errs = append(errs, fmt.Sprintf("index %d: grant %s to rack %s/%s (node %s) while rack %s holds %s (%s)",
						e.Index, g.ID, g.Cluster, g.Rack, g.Node, h.Rack, h.ID, h.State))
				}
			}
			active[g.ID] = g
			grants[g.ID] = g
		case "suspect", "renew", "checkpoint":
			if _, ok := active[e.Grant.ID]; !ok {
				errs = append(errs, fmt.Sprintf("index %d: %s of grant %s, which is not held", e.Index, e.Kind, e.Grant.ID))
			}
			active[e.Grant.ID] = *e.Grant
		case "release", "healthy", "force_release":
			if _, ok := active[e.Grant.ID]; !ok {
				errs = append(errs, fmt.Sprintf("index %d: %s of grant %s, which is not held", e.Index, e.Kind, e.Grant.ID))
			}
			delete(active, e.Grant.ID)
			if e.Kind == "release" {
				releases[e.Grant.ID] = true
			}
		}
	}
	for _, g := range active {
		left = append(left, g)
	}
	sort.Slice(left, func(i, j int) bool { return left[i].Token < left[j].Token })
	return grants, releases, left, refusals, errs
}

// checkStops checks the world the lock protects: no two nodes of different
// racks were ever stopped at the same time, by the agents' own clock.
func checkStops(stops []stopPeriod) []string {
	sort.Slice(stops, func(i, j int) bool { return stops[i].from < stops[j].from })
	var errs []string
	for i, a := range stops {
		for _, b := range stops[i+1:] {
			if b.from > a.to {
				break
			}
			if a.rack != b.rack {
				errs = append(errs, fmt.Sprintf("%s (rack %s) stopped %s..%s and %s (rack %s) stopped %s..%s",
					a.node, a.rack, ms(a.from), ms(a.to), b.node, b.rack, ms(b.from), ms(b.to)))
			}
		}
	}
	return errs
}

func ms(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 1, 64) + "ms" }
