package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nervehq/nerve/manager"
)

const (
	maxBodyBytes   = 1 << 20 // request bodies larger than this get 413
	hopHeader      = "X-Nerve-Forwarded"
	maxHops        = 2 // a write forwarded this many times is refused with not_leader
	defaultHistory = 100
	maxHistory     = 1000
	maxWait        = 60 * time.Second
)

// apiError is the body of every error answer.
type apiError struct {
	Error  string `json:"error"`
	Code   string `json:"code"`
	Leader string `json:"leader,omitempty"` // the leader's HTTP address, with not_leader
}

// Status is the answer to GET /v1/status: this replica's view.
type Status struct {
	ID           string       `json:"id"`
	State        string       `json:"state"`
	Leader       string       `json:"leader"`      // raft ID of the leader, "" when unknown
	LeaderHTTP   string       `json:"leader_http"` // its HTTP address, "" when unknown
	AppliedIndex uint64       `json:"applied_index"`
	LastIndex    uint64       `json:"last_index"`
	Peers        []PeerStatus `json:"peers"`
}

// PeerStatus is one server of the raft configuration.
type PeerStatus struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	HTTP     string `json:"http,omitempty"`
	Suffrage string `json:"suffrage"`
}

// GoalsAnswer is the answer to GET /v1/goals.
type GoalsAnswer struct {
	Merged string                   `json:"merged"`
	Levels map[manager.Level]string `json:"levels"`
}

// IndexAnswer answers a write that returns no grant: the raft index of its entry.
type IndexAnswer struct {
	Index uint64 `json:"index"`
}

// JoinRequest is the body of POST /v1/peers/join.
type JoinRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"` // raft address
	HTTP    string `json:"http"`    // HTTP API address
}

// RemoveRequest is the body of POST /v1/peers/remove.
type RemoveRequest struct {
	ID string `json:"id"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	open := func(pattern string, h http.Handler) { mux.Handle(pattern, s.instrument(pattern, h)) }
	auth := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(pattern, s.authenticate(h)))
	}

	open("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	// Metrics carry no secrets and Prometheus scrapes without credentials
	// by default, so /metrics is open like /healthz.
	open("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))

	auth("POST /v1/locks/acquire", s.write(manager.OpAcquire, func() any { return new(manager.Acquire) }))
	auth("POST /v1/locks/renew", s.write(manager.OpRenew, func() any { return new(manager.Renew) }))
	auth("POST /v1/locks/release", s.write(manager.OpRelease, func() any { return new(manager.Release) }))
	auth("POST /v1/locks/checkpoint", s.write(manager.OpCheckpoint, func() any { return new(manager.Checkpoint) }))
	auth("POST /v1/locks/force-release", s.write(manager.OpForceRelease, func() any { return new(manager.ForceRelease) }))
	auth("POST /v1/nodes/healthy", s.write(manager.OpHealthy, func() any { return new(manager.Healthy) }))
	auth("PUT /v1/goals", s.write(manager.OpSetGoals, func() any { return new(manager.SetGoals) }))
	auth("POST /v1/reports", s.write(manager.OpReport, func() any { return new(manager.Report) }))
	auth("PUT /v1/racks", s.write(manager.OpRackConfig, func() any { return new(manager.RackConfig) }))

	auth("GET /v1/locks", s.handleLocks)
	auth("GET /v1/locks/validate", s.handleValidate)
	auth("GET /v1/history", s.handleHistory)
	auth("GET /v1/goals", s.handleGoals)
	auth("GET /v1/reports", s.handleReports)
	auth("GET /v1/status", s.handleStatus)
	auth("POST /v1/peers/join", s.handleJoin)
	auth("POST /v1/peers/remove", s.handleRemove)
	auth("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// instrument times a route.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.metrics.requestDuration.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// authenticate checks the bearer token against every configured token in
// constant time (over hashes, so the length leaks nothing either).
func (s *Server) authenticate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		match := 0
		if ok && given != "" {
			sum := hashToken(given)
			for i := range s.tokens {
				match |= subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
			}
		}
		if match != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nerve-manager"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", manager.ErrUnauthorized.Error())
			return
		}
		h(w, r)
	}
}

func hashToken(t string) [32]byte { return sha256.Sum256([]byte(t)) }

// write is a command endpoint: read and check the body, forward it to the
// leader when this replica is not the leader, else propose it. A command
// that acts on a grant answers the grant; others answer the entry's index.
func (s *Server) write(op manager.Op, newBody func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, ok := readBody(w, r)
		if !ok {
			return
		}
		body := newBody()
		if err := decodeStrict(raw, body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if !s.leadOrForward(w, r, raw) {
			return
		}
		res, index, err := s.apply(op, body)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		if res.Grant != nil {
			writeJSON(w, http.StatusOK, res.Grant)
			return
		}
		writeJSON(w, http.StatusOK, IndexAnswer{Index: index})
	}
}

// leaderRead runs a linearizable read on the leader, forwarding the
// request there from a follower.
func (s *Server) leaderRead(w http.ResponseWriter, r *http.Request, read func()) {
	if err := s.verifyLeader(r.Context()); err != nil {
		if errors.Is(err, manager.ErrNotLeader) && s.raft.State() != raft.Leader {
			s.forward(w, r, nil)
			return
		}
		s.writeErr(w, err)
		return
	}
	read()
}

func (s *Server) handleLocks(w http.ResponseWriter, r *http.Request) {
	s.leaderRead(w, r, func() {
		writeJSON(w, http.StatusOK, s.fsm.Locks(r.URL.Query().Get("cluster")))
	})
}

func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("grant_id")
	token, err := strconv.ParseUint(q.Get("token"), 10, 64)
	if id == "" || err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "grant_id and token (an unsigned integer) are required")
		return
	}
	s.leaderRead(w, r, func() {
		g, err := s.fsm.Validate(id, token)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
}

// handleHistory serves the history from this replica's state (it may lag
// the leader by the replication delay). With wait, it long-polls until
// there are events at or after from.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var from uint64
	limit := defaultHistory
	var wait time.Duration
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "from: want a raft index")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit: want a positive integer")
			return
		}
		limit = min(limit, maxHistory)
	}
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "wait: want a duration such as 30s")
			return
		}
		wait = min(wait, maxWait)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := s.appliedCh() // taken before reading, so no apply is missed
		ev := s.fsm.History(from, limit)
		if len(ev) > 0 || wait == 0 {
			writeJSON(w, http.StatusOK, ev)
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			writeJSON(w, http.StatusOK, ev)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// handleGoals serves goals from this replica's state.
func (s *Server) handleGoals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	where := manager.Where{
		Cluster: q.Get("cluster"), Environment: q.Get("environment"), Region: q.Get("region"),
		Zone: q.Get("zone"), Rack: q.Get("rack"), Node: q.Get("node"),
	}
	merged, levels, err := s.fsm.Goals(where)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, GoalsAnswer{Merged: merged, Levels: levels})
}

// handleReports serves reports from this replica's state.
func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node := q.Get("node")
	if node == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "node is required")
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit: want a non-negative integer")
			return
		}
	}
	writeJSON(w, http.StatusOK, s.fsm.Reports(node, limit))
}

// handleStatus answers this replica's own view; a leader confirms its
// leadership with a quorum first, so it never reports a leadership it lost.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func (s *Server) status() Status {
	st := Status{
		ID:           s.cfg.ID,
		State:        s.raft.State().String(),
		AppliedIndex: s.fsm.LastIndex(),
		LastIndex:    s.raft.LastIndex(),
		Peers:        []PeerStatus{},
	}
	_, id := s.raft.LeaderWithID()
	if st.State == raft.Leader.String() && s.raft.VerifyLeader().Error() != nil {
		id = ""
	}
	if id != "" {
		st.Leader = string(id)
		st.LeaderHTTP = s.httpAddr(id)
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, p := range f.Configuration().Servers {
			st.Peers = append(st.Peers, PeerStatus{
				ID: string(p.ID), Address: string(p.Address), HTTP: s.httpAddr(p.ID), Suffrage: p.Suffrage.String(),
			})
		}
	}
	return st
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var req JoinRequest
	if err := decodeStrict(raw, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.ID == "" || req.Address == "" || req.HTTP == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "id, address and http are required")
		return
	}
	if err := routable(req.Address); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("address %q %v", req.Address, err))
		return
	}
	if !s.leadOrForward(w, r, raw) {
		return
	}
	s.setHTTPAddr(raft.ServerID(req.ID), req.HTTP)
	f := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Address), 0, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		s.writeErr(w, raftErr("add voter", err))
		return
	}
	s.log.Info("peer joined", "peer", req.ID, "address", req.Address, "http", req.HTTP)
	writeJSON(w, http.StatusOK, IndexAnswer{Index: f.Index()})
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var req RemoveRequest
	if err := decodeStrict(raw, &req); err != nil || req.ID == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "want {\"id\": \"...\"}")
		return
	}
	if !s.leadOrForward(w, r, raw) {
		return
	}
	f := s.raft.RemoveServer(raft.ServerID(req.ID), 0, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		s.writeErr(w, raftErr("remove server", err))
		return
	}
	s.log.Info("peer removed", "peer", req.ID)
	writeJSON(w, http.StatusOK, IndexAnswer{Index: f.Index()})
}

func raftErr(what string, err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%s: %v: %w", what, err, manager.ErrNotLeader)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// forward sends a request to the leader and copies its answer back. The
// leader authenticates the caller's own bearer token again. A request
// forwarded maxHops times already is refused, so replicas that disagree on
// the leader cannot bounce it forever.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	hops, _ := strconv.Atoi(r.Header.Get(hopHeader))
	if hops >= maxHops {
		s.writeErr(w, fmt.Errorf("forwarded %d times: %w", hops, manager.ErrNotLeader))
		return
	}
	addr := s.leaderHTTP(r.Context(), r.Header.Get("Authorization"))
	if addr == "" || addr == s.selfHTTP {
		s.writeErr(w, fmt.Errorf("no leader known: %w", manager.ErrNotLeader))
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.scheme()+"://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(hopHeader, strconv.Itoa(hops+1))
	resp, err := s.client.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, "forward_failed", fmt.Sprintf("forward to leader %s: %v", addr, err))
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Nerve-Leader", addr)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (s *Server) scheme() string {
	if s.tlsServer != nil {
		return "https"
	}
	return "http"
}

// leaderHTTP returns the leader's HTTP address, waiting up to the apply
// timeout for an election to end. A leader whose address this replica does
// not know (it joined later) is looked up in the peers' /v1/status.
func (s *Server) leaderHTTP(ctx context.Context, auth string) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for {
		_, id := s.raft.LeaderWithID()
		if id != "" {
			if a := s.httpAddr(id); a != "" {
				return a
			}
			if a := s.discover(ctx, auth, id); a != "" {
				return a
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) discover(ctx context.Context, auth string, leader raft.ServerID) string {
	for id, addr := range s.knownHTTPAddrs() {
		if id == raft.ServerID(s.cfg.ID) {
			continue
		}
		st, err := s.peerStatus(ctx, addr, auth)
		if err != nil {
			continue
		}
		for _, p := range st.Peers {
			if p.HTTP != "" && s.httpAddr(raft.ServerID(p.ID)) == "" {
				s.setHTTPAddr(raft.ServerID(p.ID), p.HTTP)
			}
		}
		if st.Leader == string(leader) && st.LeaderHTTP != "" {
			s.setHTTPAddr(leader, st.LeaderHTTP)
			return st.LeaderHTTP
		}
	}
	return ""
}

func (s *Server) peerStatus(ctx context.Context, addr, auth string) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.scheme()+"://"+addr+"/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := s.client.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("status from %s: %s", addr, resp.Status)
	}
	var st Status
	err = json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(&st)
	return st, err
}

// readBody reads at most maxBodyBytes; it answers 413 or 400 itself.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", maxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "read body: "+err.Error())
		return nil, false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "empty body: want a JSON object")
		return nil, false
	}
	return raw, true
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// anything after the value.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode body: %v", err)
	}
	if dec.Decode(&json.RawMessage{}) != io.EOF {
		return errors.New("decode body: data after the JSON value")
	}
	return nil
}

// writeErr maps an error to its status and code with errors.Is.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, manager.ErrRackBusy):
		status, code = http.StatusConflict, "rack_busy"
	case errors.Is(err, manager.ErrRackFull):
		status, code = http.StatusConflict, "rack_full"
	case errors.Is(err, manager.ErrStaleToken):
		status, code = http.StatusConflict, "stale_token"
	case errors.Is(err, manager.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, manager.ErrBadRequest):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, manager.ErrUnauthorized):
		status, code = http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, manager.ErrNotLeader):
		e := apiError{Error: err.Error(), Code: "not_leader"}
		if _, id := s.raft.LeaderWithID(); id != "" && id != raft.ServerID(s.cfg.ID) {
			e.Leader = s.httpAddr(id)
		}
		writeJSON(w, http.StatusServiceUnavailable, e)
		return
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusServiceUnavailable, "timeout"
	}
	writeError(w, status, code, err.Error())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// leadOrForward readies a write: true when this replica is the ready
// leader and is to apply it; otherwise it has answered the request, by
// forwarding it (raw, its body) to the leader or with the error, and
// returns false.
func (s *Server) leadOrForward(w http.ResponseWriter, r *http.Request, raw []byte) bool {
	err := s.awaitLeader(r.Context())
	switch {
	case err == nil:
		return true
	case errors.Is(err, manager.ErrNotLeader):
		s.forward(w, r, raw)
	default:
		s.writeErr(w, err)
	}
	return false
}
