package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/fsm"
)

var _ raft.FSM = (*notifyFSM)(nil)

// Server is one manager replica: a raft node, its state machine and the
// HTTP API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	fsm    *fsm.FSM
	tokens [][32]byte // sha256 of each bearer token

	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore
	trans  raft.Transport
	bolt   *raftboltdb.BoltStore  // nil in memory
	netw   *raft.NetworkTransport // nil when the transport was passed in

	raft         *raft.Raft                // set by Start
	started      atomic.Pointer[raft.Raft] // raft, for readers that may run before Start (metrics)
	bootstrapped bool                      // Start bootstrapped the cluster (no state was found)

	selfHTTP  string      // the HTTP address peers use for this replica
	tlsServer *tls.Config // nil without TLS
	client    *http.Client
	handler   http.Handler
	metrics   *metrics

	httpLn  net.Listener // opened by Start unless a test set it
	httpSrv *http.Server

	mu        sync.Mutex
	httpAddrs map[raft.ServerID]string // guarded by mu: raft ID -> HTTP address
	ready     chan struct{}            // guarded by mu: closed once this leader's barrier is done
	applied   chan struct{}            // guarded by mu: closed and replaced on every apply

	cancel    context.CancelFunc // ends the goroutines Start launched
	wg        sync.WaitGroup
	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
}

// New checks cfg, opens the state in cfg.Dir (raft-boltdb log and stable
// store, file snapshots) and binds the raft TCP transport. Raft and the
// HTTP API start with Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("manager config: %w", err)
	}
	cfg.setDefaults()
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(cfg.Dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, newRaftLogger(s.log).Named("snapshot"))
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	s.bolt, s.logs, s.stable, s.snaps = bolt, bolt, bolt, snaps

	netw, err := s.newTransport()
	if err != nil {
		bolt.Close()
		return nil, err
	}
	s.netw, s.trans = netw, netw
	return s, nil
}

// NewWithTransport makes a replica with in-memory stores over trans, for
// in-process clusters (raft.NewInmemTransport). cfg.Dir, BindAddr and
// AdvertiseAddr are ignored; the caller owns trans.
func NewWithTransport(cfg Config, trans raft.Transport) (*Server, error) {
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("manager config: %w", err)
	}
	cfg.setDefaults()
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	store := raft.NewInmemStore()
	s.logs, s.stable, s.snaps, s.trans = store, store, raft.NewInmemSnapshotStore(), trans
	return s, nil
}

func newServer(cfg Config) (*Server, error) {
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("replica", cfg.ID),
		fsm:       fsm.New(),
		httpAddrs: map[raft.ServerID]string{raft.ServerID(cfg.ID): cfg.HTTPAddr},
		ready:     make(chan struct{}),
		applied:   make(chan struct{}),
		serveErr:  make(chan error, 1),
	}
	for _, p := range cfg.Peers {
		if p.HTTP != "" {
			s.httpAddrs[raft.ServerID(p.ID)] = p.HTTP
		}
	}
	s.selfHTTP = s.httpAddrs[raft.ServerID(cfg.ID)]
	tokens := cfg.Tokens
	if cfg.TokensFile != "" {
		var err error
		if tokens, err = loadTokens(cfg.TokensFile); err != nil {
			return nil, err
		}
	}
	for _, t := range tokens {
		s.tokens = append(s.tokens, hashToken(t))
	}
	if cfg.TLS.enabled() {
		srv, cli, err := loadTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		s.tlsServer = srv
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: cli}}
	} else {
		s.client = &http.Client{}
	}
	s.client.Timeout = cfg.ApplyTimeout + 5*time.Second
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		s.cfg.Registry = reg
	}
	s.metrics = newMetrics(s)
	if err := reg.Register(s.metrics); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the HTTP API (what Start serves on HTTPAddr).
func (s *Server) Handler() http.Handler { return s.handler }

// Start starts raft, bootstraps the cluster from cfg.Peers when Bootstrap is
// set and there is no state at all, and serves the HTTP API. The goroutines
// it starts end when ctx ends or Close is called.
func (s *Server) Start(ctx context.Context) error {
	hasState, err := raft.HasExistingState(s.logs, s.stable, s.snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.ID)
	rc.Logger = newRaftLogger(s.log)
	if s.cfg.Tune != nil {
		s.cfg.Tune(rc)
	}
	r, err := raft.NewRaft(rc, &notifyFSM{f: s.fsm, notify: s.notifyApplied}, s.logs, s.stable, s.snaps, s.trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	s.started.Store(r)
	if s.cfg.Bootstrap && !hasState {
		conf := raft.Configuration{}
		if len(s.cfg.Peers) == 0 {
			conf.Servers = []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}
		}
		for _, p := range s.cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		if err := r.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
		s.bootstrapped = true
		s.log.Info("bootstrapped cluster", "servers", len(conf.Servers))
	} else if hasState {
		s.log.Info("found raft state; not bootstrapping", "last_index", r.LastIndex())
	}

	if s.httpLn == nil {
		ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http_addr: %w", err)
		}
		s.httpLn = ln
	}
	if s.tlsServer != nil {
		s.httpLn = tls.NewListener(s.httpLn, s.tlsServer)
	}
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() { // ends when Close shuts the HTTP server down
		defer s.wg.Done()
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("serve http: %w", err)
		}
	}()
	go func() { // ends with ctx
		defer s.wg.Done()
		s.watchLeadership(ctx)
	}()
	s.log.Info("manager replica started", "http", s.httpLn.Addr().String(), "raft", string(s.trans.LocalAddr()))
	return nil
}

// Close stops the HTTP API, raft and the goroutines, and closes the stores.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.cancel != nil {
			s.cancel()
		}
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down http: %w", err))
			}
			cancel()
		} else if s.httpLn != nil {
			s.httpLn.Close()
		}
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("shut down raft: %w", err))
			}
		}
		s.wg.Wait()
		if s.netw != nil {
			if err := s.netw.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close transport: %w", err))
			}
		}
		if s.bolt != nil {
			if err := s.bolt.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft store: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Run starts a replica and serves until ctx ends or the HTTP server fails,
// then closes it. `nerve manager` calls it.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.serveErr:
	}
	return errors.Join(runErr, s.Close())
}

// watchLeadership follows raft's leadership signal. On gaining it, the
// leader issues a barrier, so that its state machine holds every entry of
// earlier terms, before it serves reads and writes; then it proposes
// OpExpire every ExpireInterval until it loses leadership.
func (s *Server) watchLeadership(ctx context.Context) {
	var endTerm context.CancelFunc = func() {}
	defer func() { endTerm() }()
	leaderCh := s.raft.LeaderCh()
	for {
		select {
		case <-ctx.Done():
			return
		case leading := <-leaderCh:
			endTerm()
			s.setNotReady()
			if !leading {
				s.log.Info("lost leadership")
				endTerm = func() {}
				continue
			}
			s.log.Info("gained leadership")
			endTerm = s.startTerm(ctx)
		}
	}
}

// startTerm runs lead until the returned function is called or ctx ends.
func (s *Server) startTerm(ctx context.Context) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.lead(ctx)
	}()
	return cancel
}

func (s *Server) lead(ctx context.Context) {
	for {
		err := s.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		s.log.Warn("leader barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.mu.Lock()
	if ctx.Err() == nil {
		close(s.ready)
	}
	s.mu.Unlock()
	s.log.Info("leader ready", "applied_index", s.raft.AppliedIndex())

	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			res, _, err := s.apply(manager.OpExpire, manager.Expire{})
			if err != nil {
				if !errors.Is(err, manager.ErrNotLeader) {
					s.log.Warn("propose expire", "err", err)
				}
				continue
			}
			for _, e := range res.Events {
				if e.Kind == "suspect" {
					s.metrics.leaseExpiries.Inc()
				}
			}
		}
	}
}

func (s *Server) setNotReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ready:
		s.ready = make(chan struct{})
	default:
	}
}

// awaitLeader waits until this replica is the leader and its barrier is
// done. It returns ErrNotLeader when the replica is not the leader, or does
// not become ready within the apply timeout.
func (s *Server) awaitLeader(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return manager.ErrNotLeader
	}
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	t := time.NewTimer(s.cfg.ApplyTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("leader not ready: %w", manager.ErrNotLeader)
	}
}

// verifyLeader makes a read linearizable: the replica must be a ready
// leader and still hold leadership by a quorum's word.
func (s *Server) verifyLeader(ctx context.Context) error {
	if err := s.awaitLeader(ctx); err != nil {
		return err
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leader: %v: %w", err, manager.ErrNotLeader)
	}
	return nil
}

// apply proposes one command stamped with this leader's clock and returns
// the state machine's result and the entry's index. A refusal by the state
// machine is returned as the error, with the result.
func (s *Server) apply(op manager.Op, body any) (*fsm.Result, uint64, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s: %v: %w", op, err, manager.ErrBadRequest)
	}
	b, err := fsm.Encode(manager.Command{Op: op, At: time.Now().UTC(), Body: raw})
	if err != nil {
		return nil, 0, err
	}
	f := s.raft.Apply(b, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return nil, 0, fmt.Errorf("apply %s: %v: %w", op, err, manager.ErrNotLeader)
		}
		return nil, 0, fmt.Errorf("apply %s: %w", op, err)
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, f.Index(), fmt.Errorf("apply %s: unexpected result %T", op, f.Response())
	}
	return res, f.Index(), res.Err
}

func (s *Server) notifyApplied() {
	s.mu.Lock()
	close(s.applied)
	s.applied = make(chan struct{})
	s.mu.Unlock()
}

// appliedCh is closed at the next apply or restore.
func (s *Server) appliedCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// notifyFSM wakes the history long polls after each apply and restore. It
// implements only raft.FSM, so raft never bypasses Apply.
type notifyFSM struct {
	f      *fsm.FSM
	notify func()
}

func (n *notifyFSM) Apply(l *raft.Log) interface{} {
	r := n.f.Apply(l)
	n.notify()
	return r
}

func (n *notifyFSM) Snapshot() (raft.FSMSnapshot, error) { return n.f.Snapshot() }

func (n *notifyFSM) Restore(rc io.ReadCloser) error {
	err := n.f.Restore(rc)
	n.notify()
	return err
}

// httpAddr returns the HTTP address of a raft server, if known.
func (s *Server) httpAddr(id raft.ServerID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddrs[id]
}

func (s *Server) setHTTPAddr(id raft.ServerID, addr string) {
	if id == "" || addr == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.httpAddrs[id] = addr
}

func (s *Server) knownHTTPAddrs() map[raft.ServerID]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[raft.ServerID]string, len(s.httpAddrs))
	for k, v := range s.httpAddrs {
		out[k] = v
	}
	return out
}
