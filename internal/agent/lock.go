package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
)

var _ actuator.Lock = (*ManagerLock)(nil)

// lockCallTimeout bounds each of Acquire, Validate and Release, whose
// interface carries no context: the client's retries over the replicas run
// within it, and the controller's tick waits no longer.
const lockCallTimeout = 15 * time.Second

// ManagerLock is the rack lock of the manager (actuator.lock: manager). A
// refusal, a stale token or a manager that cannot be reached all deny the
// lock: every error of Acquire and Validate wraps actuator.ErrLockDenied,
// and the manager's own sentinel (manager.ErrRackBusy, ...) when it
// answered.
//
// While a grant is held a goroutine renews its lease every third of it.
// That goroutine ends when Release is called for the grant, when Close is
// called, or when the manager refuses a renewal as stale (the grant was
// force-released or replaced): the lock is then lost, and logged as such.
// A renewal that fails for another reason is tried again at the next
// third; a lease that lapses meanwhile turns the grant suspect at the
// manager, which keeps the rack locked until the node reports healthy.
//
// The controller hands Validate and Release a Grant whose ID is its own
// decision ID, not the manager's grant ID, and after a restart it hands
// grants this ManagerLock never saw. So grants are known by their fencing
// token (unique over all grants), and a token not held here is looked up
// among the cluster's grants at the manager; a held grant found that way
// (an action resumed after a restart) is renewed again from then on.
type ManagerLock struct {
	client  *client.Client
	logger  *slog.Logger
	cluster string
	rack    string
	node    string
	lease   time.Duration
	timeout time.Duration

	mu     sync.Mutex
	held   map[uint64]*renewal // by fencing token; guarded by mu
	closed bool                // guarded by mu
	wg     sync.WaitGroup      // counts the renewal goroutines
}

// renewal is one held grant and its renewal goroutine.
type renewal struct {
	grantID string
	cancel  context.CancelFunc // ends the goroutine
	done    chan struct{}      // closed when it has ended
}

// NewManagerLock builds the lock from the manager section of the
// configuration, which must have passed Validate. It reads the token and CA
// files now, so that a missing file fails the start rather than the first
// action. opts go to the client after the configuration's own.
func NewManagerLock(cfg config.Manager, logger *slog.Logger, opts ...client.Option) (*ManagerLock, error) {
	var token string
	if cfg.TokenFile != "" {
		var err error
		if token, err = client.ReadTokenFile(cfg.TokenFile); err != nil {
			return nil, fmt.Errorf("manager.token_file: %w", err)
		}
	}
	var copts []client.Option
	tc, err := client.TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("manager.ca_file, manager.cert_file, manager.key_file: %w", err)
	}
	if tc != nil {
		copts = append(copts, client.WithTLS(tc))
	}
	c, err := client.New(cfg.Endpoints, token, append(copts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("manager.endpoints: %w", err)
	}
	node := cfg.Node
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("manager.node is not set and the hostname is unknown: %w", err)
		}
	}
	return &ManagerLock{
		client: c, logger: logger.With("component", "rack-lock"),
		cluster: cfg.Cluster, rack: cfg.Rack, node: node, lease: cfg.Lease, timeout: lockCallTimeout,
		held: map[uint64]*renewal{},
	}, nil
}

// Acquire asks the manager for the rack lock for op. The manager answers a
// repeat of requestID with the same grant, so a retried Acquire does not
// lock the node out.
func (l *ManagerLock) Acquire(op, requestID string) (actuator.Grant, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	g, err := l.client.Acquire(ctx, manager.Acquire{
		Cluster: l.cluster, Rack: l.rack, Node: l.node, Operation: op, RequestID: requestID, Lease: l.lease,
	})
	if err != nil {
		return actuator.Grant{}, fmt.Errorf("%s (%s): %w: %w", op, requestID, actuator.ErrLockDenied, err)
	}
	if g.State != manager.Held || g.Token == 0 {
		return actuator.Grant{}, fmt.Errorf("%s (%s): manager answered grant %s token %d %s: %w",
			op, requestID, g.ID, g.Token, g.State, actuator.ErrLockDenied)
	}
	if !l.keep(g) {
		if err := l.release(g.ID, g.Token); err != nil {
			l.logger.Warn("release rack lock granted after close", "grant", g.ID, "token", g.Token, "err", err)
		}
		return actuator.Grant{}, fmt.Errorf("%s (%s): the lock is closed: %w", op, requestID, actuator.ErrLockDenied)
	}
	l.logger.Info("rack lock granted", "operation", op, "request", requestID, "grant", g.ID, "token", g.Token)
	return actuator.Grant{ID: g.ID, Token: g.Token}, nil
}

// Validate checks at the manager (a linearizable read at the leader) that
// the grant with g's token still holds; any doubt denies.
func (l *ManagerLock) Validate(g actuator.Grant) error {
	if g.Token == 0 {
		return fmt.Errorf("no grant token: %w", actuator.ErrLockDenied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	id, err := l.resolve(ctx, g.Token, true)
	if err != nil {
		return fmt.Errorf("validate rack lock token %d: %w: %w", g.Token, actuator.ErrLockDenied, err)
	}
	mg, err := l.client.Validate(ctx, id, g.Token)
	if err != nil {
		return fmt.Errorf("%w: %w", actuator.ErrLockDenied, err)
	}
	if mg.State != manager.Held || mg.Token != g.Token {
		return fmt.Errorf("grant %s token %d is %s at the manager (token %d): %w",
			id, g.Token, mg.State, mg.Token, actuator.ErrLockDenied)
	}
	return nil
}

// Release stops renewing the grant and gives it back. A grant the manager
// no longer holds (released already, force-released, replaced) needs no
// release, so Release can be repeated.
func (l *ManagerLock) Release(g actuator.Grant) error {
	if g.Token == 0 {
		return nil
	}
	id := l.stop(g.Token)
	if id == "" {
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		var err error
		id, err = l.resolve(ctx, g.Token, false)
		if errors.Is(err, manager.ErrStaleToken) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("release rack lock token %d: %w", g.Token, err)
		}
	}
	return l.release(id, g.Token)
}

func (l *ManagerLock) release(id string, token uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	_, err := l.client.Release(ctx, manager.Release{GrantID: id, Token: token})
	if errors.Is(err, manager.ErrStaleToken) {
		l.logger.Info("rack lock was no longer held", "grant", id, "token", token)
		return nil
	}
	if err != nil {
		return err
	}
	l.logger.Info("rack lock released", "grant", id, "token", token)
	return nil
}

// ReportHealthy tells the manager this node is up again, which frees the
// node's suspect grants (leases that lapsed while it was down).
func (l *ManagerLock) ReportHealthy(ctx context.Context) error {
	return l.client.Healthy(ctx, manager.Healthy{Cluster: l.cluster, Node: l.node})
}

// Close stops every renewal and waits for the goroutines to end. It
// releases nothing: a grant still held lapses into suspect at the manager,
// which keeps the rack locked until the node says it is healthy, because
// an action interrupted by a stop may have left the database down. After
// Close, Acquire denies.
func (l *ManagerLock) Close() error {
	l.mu.Lock()
	l.closed = true
	for _, r := range l.held {
		r.cancel()
	}
	l.held = map[uint64]*renewal{}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// resolve finds the manager's grant ID of a token: held here, or else among
// the cluster's grants of this node at the manager. A token not found wraps
// manager.ErrStaleToken. With adopt, a held grant found at the manager is
// renewed from now on.
func (l *ManagerLock) resolve(ctx context.Context, token uint64, adopt bool) (string, error) {
	l.mu.Lock()
	r, ok := l.held[token]
	l.mu.Unlock()
	if ok {
		return r.grantID, nil
	}
	gs, err := l.client.Locks(ctx, l.cluster)
	if err != nil {
		return "", err
	}
	for _, g := range gs {
		if g.Token != token || g.Node != l.node {
			continue
		}
		if adopt && g.State == manager.Held && l.keep(g) {
			l.logger.Info("renewing a grant taken before a restart", "grant", g.ID, "token", g.Token)
		}
		return g.ID, nil
	}
	return "", fmt.Errorf("no grant of node %s with token %d at the manager: %w", l.node, token, manager.ErrStaleToken)
}

// keep starts renewing g unless it is renewed already; it says false when
// the lock is closed.
func (l *ManagerLock) keep(g manager.Grant) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if _, ok := l.held[g.Token]; ok {
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &renewal{grantID: g.ID, cancel: cancel, done: make(chan struct{})}
	l.held[g.Token] = r
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(r.done)
		l.renew(ctx, g)
	}()
	return true
}

// stop ends the renewal of token and waits for it; it returns the grant ID,
// or "" when the token was not renewed here.
func (l *ManagerLock) stop(token uint64) string {
	l.mu.Lock()
	r, ok := l.held[token]
	delete(l.held, token)
	l.mu.Unlock()
	if !ok {
		return ""
	}
	r.cancel()
	<-r.done
	return r.grantID
}

// renew renews g every third of the lease until ctx ends or the manager
// refuses the token.
func (l *ManagerLock) renew(ctx context.Context, g manager.Grant) {
	every := l.lease / 3
	log := l.logger.With("grant", g.ID, "token", g.Token)
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK, lapsed := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		_, err := l.client.Renew(rctx, manager.Renew{GrantID: g.ID, Token: g.Token, Lease: l.lease})
		cancel()
		switch {
		case err == nil:
			lastOK, lapsed = time.Now(), false
		case ctx.Err() != nil:
			return
		case errors.Is(err, manager.ErrStaleToken):
			log.Error("rack lock lost: the manager refused the renewal", "err", err)
			l.mu.Lock()
			delete(l.held, g.Token) // Release then finds it stale at the manager
			l.mu.Unlock()
			return
		default:
			if !lapsed && time.Since(lastOK) > l.lease {
				lapsed = true
				log.Error("rack lock lease lapsed: renewals fail; the manager marks the grant suspect", "err", err)
			} else {
				log.Warn("renew rack lock", "err", err)
			}
		}
	}
}

// Checkpoint records at the manager the step an action holding g reached.
func (l *ManagerLock) Checkpoint(g actuator.Grant, step string) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	id, err := l.resolve(ctx, g.Token, false)
	if err != nil {
		return err
	}
	_, err = l.client.Checkpoint(ctx, manager.Checkpoint{GrantID: id, Token: g.Token, Step: step})
	return err
}

// Publish sends a decision report to the manager's history.
func (l *ManagerLock) Publish(ctx context.Context, id string, decision []byte) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.client.Report(ctx, manager.Report{Node: l.node, ID: id, Decision: decision})
}

// Goals fetches the goals document merged for this node from the cluster,
// rack and node levels ("" when the manager holds none).
func (l *ManagerLock) Goals(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	g, err := l.client.Goals(ctx, manager.Where{Cluster: l.cluster, Rack: l.rack, Node: l.node})
	if err != nil {
		return "", err
	}
	return g.Merged, nil
}
