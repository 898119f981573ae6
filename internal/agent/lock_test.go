package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
)

// fakeManager is the manager's lock API in memory: one holder per cluster,
// tokens increasing, a bearer token checked.
type fakeManager struct {
	*httptest.Server
	token string

	mu     sync.Mutex
	grants map[string]*manager.Grant // by ID; guarded by mu
	last   uint64                    // guarded by mu
	renews int                       // guarded by mu
}

func newFakeManager(t *testing.T) *fakeManager {
	t.Helper()
	f := &fakeManager{token: "s3cret", grants: map[string]*manager.Grant{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeManager) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(status int, code string) { reply(status, map[string]string{"error": code, "code": code}) }
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(401, "unauthorized")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	held := func(id string, token uint64) *manager.Grant {
		g := f.grants[id]
		if g == nil || g.Token != token || g.State != manager.Held {
			return nil
		}
		return g
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /v1/locks/acquire":
		var a manager.Acquire
		json.NewDecoder(r.Body).Decode(&a)
		for _, g := range f.grants {
			switch {
			case g.State == manager.Released || g.Cluster != a.Cluster:
			case g.Node == a.Node && g.RequestID == a.RequestID:
				reply(200, g)
				return
			case g.Rack != a.Rack:
				fail(409, "rack_busy")
				return
			default:
				fail(409, "rack_full")
				return
			}
		}
		f.last++
		g := &manager.Grant{ID: fmt.Sprintf("grant-%d", f.last), Token: f.last, Cluster: a.Cluster, Rack: a.Rack,
			Node: a.Node, Operation: a.Operation, RequestID: a.RequestID, State: manager.Held}
		f.grants[g.ID] = g
		reply(200, g)
	case "POST /v1/locks/renew", "POST /v1/locks/release":
		var b manager.Release
		json.NewDecoder(r.Body).Decode(&b)
		g := held(b.GrantID, b.Token)
		if g == nil {
			fail(409, "stale_token")
			return
		}
		if r.URL.Path == "/v1/locks/renew" {
			f.renews++
		} else {
			g.State = manager.Released
		}
		reply(200, g)
	case "GET /v1/locks/validate":
		tok, _ := strconv.ParseUint(r.URL.Query().Get("token"), 10, 64)
		g := held(r.URL.Query().Get("grant_id"), tok)
		if g == nil {
			fail(409, "stale_token")
			return
		}
		reply(200, g)
	case "GET /v1/locks":
		gs := []manager.Grant{}
		for _, g := range f.grants {
			if g.Cluster == r.URL.Query().Get("cluster") && g.State != manager.Released {
				gs = append(gs, *g)
			}
		}
		reply(200, gs)
	case "POST /v1/nodes/healthy":
		reply(200, map[string]string{})
	default:
		fail(404, "not_found")
	}
}

// revoke frees a grant behind its holder's back, as a force-release does.
func (f *fakeManager) revoke(id string) {
	f.mu.Lock()
	f.grants[id].State = manager.Released
	f.mu.Unlock()
}

func (f *fakeManager) renewCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renews
}

func (f *fakeManager) state(id string) manager.GrantState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grants[id].State
}

func newTestLock(t *testing.T, endpoint, rack string, lease time.Duration) *ManagerLock {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := NewManagerLock(config.Manager{
		Endpoints: []string{endpoint}, TokenFile: tokenFile, Cluster: "prod", Rack: rack, Node: "node-" + rack, Lease: lease,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), client.WithRetry(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l.timeout = 2 * time.Second
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls cond for up to 5 s: renewals run on their own clock.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestManagerLockLifecycle(t *testing.T) {
	f := newFakeManager(t)
	l := newTestLock(t, f.URL, "r1", 30*time.Millisecond)

	g, err := l.Acquire("jvmquake", "dec-1")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if g.ID != "grant-1" || g.Token != 1 {
		t.Errorf("grant = %+v, want grant-1 token 1", g)
	}
	// Acquire is idempotent per request ID: the same grant, one renewer.
	if again, err := l.Acquire("jvmquake", "dec-1"); err != nil || again != g {
		t.Errorf("Acquire again = %+v, %v, want %+v", again, err, g)
	}
	waitFor(t, "two renewals", func() bool { return f.renewCount() >= 2 })

	// The controller hands back its decision ID with the token, not the
	// manager's grant ID.
	asController := actuator.Grant{ID: "dec-1", Token: g.Token}
	if err := l.Validate(asController); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := l.Release(asController); err != nil {
		t.Errorf("Release: %v", err)
	}
	if got := f.state("grant-1"); got != manager.Released {
		t.Errorf("state after Release = %s, want released", got)
	}
	n := f.renewCount()
	time.Sleep(100 * time.Millisecond)
	if got := f.renewCount(); got != n {
		t.Errorf("renewals went on after Release: %d, then %d", n, got)
	}
	if err := l.Validate(asController); !errors.Is(err, actuator.ErrLockDenied) || !errors.Is(err, manager.ErrStaleToken) {
		t.Errorf("Validate after Release = %v, want ErrLockDenied and ErrStaleToken", err)
	}
	if err := l.Release(asController); err != nil {
		t.Errorf("Release again = %v, want nil", err)
	}
}

func TestManagerLockDenied(t *testing.T) {
	f := newFakeManager(t)
	r1 := newTestLock(t, f.URL, "r1", time.Minute)
	r2 := newTestLock(t, f.URL, "r2", time.Minute)
	if _, err := r1.Acquire("jvmquake", "a"); err != nil {
		t.Fatal(err)
	}
	_, err := r2.Acquire("jvmquake", "b")
	if !errors.Is(err, actuator.ErrLockDenied) || !errors.Is(err, manager.ErrRackBusy) {
		t.Errorf("Acquire of a second rack = %v, want ErrLockDenied and ErrRackBusy", err)
	}

	unreachable := newTestLock(t, deadURL(t), "r3", time.Minute)
	if _, err := unreachable.Acquire("jvmquake", "c"); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Acquire from no manager = %v, want ErrLockDenied", err)
	}
	if err := unreachable.Validate(actuator.Grant{ID: "c", Token: 9}); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate with no manager = %v, want ErrLockDenied", err)
	}
	if err := r1.Validate(actuator.Grant{ID: "x"}); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate of token 0 = %v, want ErrLockDenied", err)
	}
}

// A grant force-released at the manager is lost: the renewer stops, and
// Validate denies.
func TestManagerLockLost(t *testing.T) {
	f := newFakeManager(t)
	l := newTestLock(t, f.URL, "r1", 30*time.Millisecond)
	g, err := l.Acquire("jvmquake", "dec-1")
	if err != nil {
		t.Fatal(err)
	}
	f.revoke(g.ID)
	waitFor(t, "the renewer to give up", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.held) == 0
	})
	if err := l.Validate(g); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate of a lost grant = %v, want ErrLockDenied", err)
	}
	if err := l.Release(g); err != nil {
		t.Errorf("Release of a lost grant = %v, want nil", err)
	}
}

// After a restart the controller resumes an action with a grant this lock
// never saw: Validate finds it at the manager and renews it again.
func TestManagerLockAfterRestart(t *testing.T) {
	f := newFakeManager(t)
	before := newTestLock(t, f.URL, "r1", 30*time.Millisecond)
	g, err := before.Acquire("transfer-and-exit", "dec-1")
	if err != nil {
		t.Fatal(err)
	}
	before.Close() // a stop: nothing released
	if got := f.state(g.ID); got != manager.Held {
		t.Fatalf("state after Close = %s, want held", got)
	}
	if _, err := before.Acquire("jvmquake", "dec-2"); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Acquire after Close = %v, want ErrLockDenied", err)
	}

	after := newTestLock(t, f.URL, "r1", 30*time.Millisecond)
	resumed := actuator.Grant{ID: "dec-1", Token: g.Token}
	n := f.renewCount()
	if err := after.Validate(resumed); err != nil {
		t.Fatalf("Validate after restart: %v", err)
	}
	waitFor(t, "renewals of the adopted grant", func() bool { return f.renewCount() > n })
	if err := after.Release(resumed); err != nil {
		t.Fatalf("Release after restart: %v", err)
	}
	if got := f.state(g.ID); got != manager.Released {
		t.Errorf("state after Release = %s, want released", got)
	}
}

func TestNewManagerLock(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	base := config.Manager{Endpoints: []string{"http://m1:19649"}, Cluster: "c", Rack: "r", Lease: time.Minute}
	tests := []struct {
		name string
		edit func(*config.Manager)
		want string
	}{
		{"missing token file", func(m *config.Manager) { m.TokenFile = filepath.Join(dir, "nope") }, "manager.token_file: manager token: open"},
		{"empty token file", func(m *config.Manager) { m.TokenFile = empty }, "is empty"},
		{"bad ca file", func(m *config.Manager) { m.CAFile = notPEM }, "manager.ca_file, manager.cert_file, manager.key_file: manager CA: " + notPEM + " holds no PEM certificate"},
		{"key without cert", func(m *config.Manager) { m.KeyFile = notPEM }, "need both the certificate and the key file"},
		{"no endpoints", func(m *config.Manager) { m.Endpoints = nil }, "manager.endpoints: manager client: no endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			tt.edit(&m)
			_, err := NewManagerLock(m, slog.Default())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewManagerLock = %v, want an error with %q", err, tt.want)
			}
		})
	}
	l, err := NewManagerLock(base, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if host, _ := os.Hostname(); l.node != host {
		t.Errorf("node = %q, want the hostname %q", l.node, host)
	}
}

func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}
