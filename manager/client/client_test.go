package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nervehq/nerve/manager"
)

// replica is a fake manager replica: it counts requests and answers with
// handle.
type replica struct {
	*httptest.Server
	hits atomic.Int32
}

func newReplica(t *testing.T, handle http.HandlerFunc) *replica {
	t.Helper()
	r := &replica{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		handle(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *replica) host() string { return strings.TrimPrefix(r.URL, "http://") }

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func refuse(status int, code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		answer(w, status, map[string]string{"error": msg, "code": code})
	}
}

// grantFor answers an acquire with a grant made from the request.
func grantFor(w http.ResponseWriter, req *http.Request) {
	var a manager.Acquire
	if err := json.NewDecoder(req.Body).Decode(&a); err != nil {
		answer(w, 400, map[string]string{"error": err.Error(), "code": "bad_request"})
		return
	}
	answer(w, 200, manager.Grant{ID: "g-" + a.RequestID, Token: 7, Cluster: a.Cluster, Rack: a.Rack, Node: a.Node,
		Operation: a.Operation, RequestID: a.RequestID, State: manager.Held})
}

// deadEndpoint is an address nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func fast() Option { return WithRetry(0, time.Millisecond, 5*time.Millisecond) }

var acq = manager.Acquire{Cluster: "c1", Rack: "r1", Node: "n1", Operation: "jvmquake", RequestID: "req-1", Lease: time.Minute}

func TestFailoverToSecondEndpoint(t *testing.T) {
	b := newReplica(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/locks" {
			answer(w, 200, []manager.Grant{})
			return
		}
		grantFor(w, req)
	})
	c, err := New([]string{deadEndpoint(t), b.URL}, "tok", fast())
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Acquire(context.Background(), acq)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if got, want := g.ID, "g-req-1"; got != want {
		t.Errorf("grant ID = %q, want %q", got, want)
	}
	// The replica that answered is asked first next time.
	if _, err := c.Locks(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	if got := b.hits.Load(); got != 2 {
		t.Errorf("second replica hits = %d, want 2", got)
	}
}

func TestNotLeaderHintIsFollowed(t *testing.T) {
	leader := newReplica(t, grantFor)
	follower := newReplica(t, func(w http.ResponseWriter, _ *http.Request) {
		answer(w, 503, map[string]string{"error": "not the leader", "code": "not_leader", "leader": ""})
	})
	// The first replica names the leader, which is not in the list at all.
	hinting := newReplica(t, func(w http.ResponseWriter, _ *http.Request) {
		answer(w, 503, map[string]string{"error": "not the leader", "code": "not_leader", "leader": leader.host()})
	})
	c, err := New([]string{hinting.URL, follower.URL}, "tok", WithRetry(0, time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Acquire(ctx, acq); err != nil {
		t.Fatalf("Acquire: %v (a fresh hint must be followed without a backoff)", err)
	}
	if _, err := c.Renew(ctx, manager.Renew{GrantID: "g", Token: 7}); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if got := hinting.hits.Load(); got != 1 {
		t.Errorf("hinting replica hits = %d, want 1 (the leader is remembered)", got)
	}
	if got := follower.hits.Load(); got != 0 {
		t.Errorf("follower hits = %d, want 0", got)
	}
	if got := leader.hits.Load(); got != 2 {
		t.Errorf("leader hits = %d, want 2", got)
	}
}

func TestNotLeaderWithoutHintTriesNext(t *testing.T) {
	a := newReplica(t, refuse(503, "not_leader", "election in progress"))
	b := newReplica(t, grantFor)
	c, err := New([]string{a.URL, b.URL}, "", fast())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(context.Background(), acq); err != nil {
		t.Fatal(err)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Errorf("hits = %d, %d, want 1, 1", a.hits.Load(), b.hits.Load())
	}
}

// A refusal is final: neither the same replica nor another is asked again.
func TestNoRetryOnRefusal(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{409, "rack_busy", manager.ErrRackBusy},
		{409, "rack_full", manager.ErrRackFull},
		{409, "stale_token", manager.ErrStaleToken},
		{400, "bad_request", manager.ErrBadRequest},
		{401, "unauthorized", manager.ErrUnauthorized},
		{404, "not_found", manager.ErrNotFound},
		{401, "", manager.ErrUnauthorized}, // no code: the status says
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			a := newReplica(t, refuse(tt.status, tt.code, "nope"))
			b := newReplica(t, grantFor)
			c, err := New([]string{a.URL, b.URL}, "tok", fast())
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Acquire(context.Background(), acq)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.want)
			}
			var api *APIError
			if !errors.As(err, &api) || api.Status != tt.status {
				t.Errorf("err = %#v, want an *APIError with status %d", err, tt.status)
			}
			if a.hits.Load() != 1 || b.hits.Load() != 0 {
				t.Errorf("hits = %d, %d, want 1, 0", a.hits.Load(), b.hits.Load())
			}
		})
	}
}

// A request that may have been applied is sent again only by the methods
// whose repeat cannot change the outcome.
func TestAmbiguousFailure(t *testing.T) {
	for _, tt := range []struct {
		name      string
		fail      http.HandlerFunc
		call      func(*Client) error
		wantRetry bool
	}{
		{"acquire after a dropped connection", hangUp, func(c *Client) error {
			_, err := c.Acquire(context.Background(), acq)
			return err
		}, true},
		{"force-release after a dropped connection", hangUp, func(c *Client) error {
			_, err := c.ForceRelease(context.Background(), manager.ForceRelease{GrantID: "g"})
			return err
		}, false},
		{"release after a 500", refuse(500, "", "boom"), func(c *Client) error {
			_, err := c.Release(context.Background(), manager.Release{GrantID: "g", Token: 1})
			return err
		}, true},
		{"report after a 500", refuse(500, "", "boom"), func(c *Client) error {
			return c.Report(context.Background(), manager.Report{Node: "n", ID: "d"})
		}, false},
		{"join after a dropped connection", hangUp, func(c *Client) error {
			return c.Join(context.Background(), Peer{ID: "m2", Address: "10.0.0.2:7000"})
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newReplica(t, tt.fail)
			b := newReplica(t, grantFor)
			c, err := New([]string{a.URL, b.URL}, "tok", fast())
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(c)
			if got := b.hits.Load() == 1; got != tt.wantRetry {
				t.Errorf("sent to the second replica = %v, want %v (err %v)", got, tt.wantRetry, err)
			}
			if !tt.wantRetry && (err == nil || !strings.Contains(err.Error(), "not retried")) {
				t.Errorf("err = %v, want it to say it was not retried", err)
			}
		})
	}
}

// hangUp reads the request and drops the connection without an answer.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestTokenSent(t *testing.T) {
	for _, tok := range []string{"s3cret", ""} {
		var got atomic.Value
		r := newReplica(t, func(w http.ResponseWriter, req *http.Request) {
			got.Store(req.Header.Get("Authorization"))
			answer(w, 200, []manager.Grant{})
		})
		c, err := New([]string{r.URL}, tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Locks(context.Background(), "c1"); err != nil {
			t.Fatal(err)
		}
		want := ""
		if tok != "" {
			want = "Bearer " + tok
		}
		if got.Load() != want {
			t.Errorf("Authorization = %q, want %q", got.Load(), want)
		}
	}
}

func TestContextCancellation(t *testing.T) {
	t.Run("while waiting for an answer", func(t *testing.T) {
		r := newReplica(t, func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body) // the server notices a closed connection only after the body
			<-req.Context().Done()
		})
		c, err := New([]string{r.URL}, "tok", fast())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err = c.Acquire(ctx, acq)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Acquire returned after %v", d)
		}
		if got := r.hits.Load(); got != 1 {
			t.Errorf("hits = %d, want 1", got)
		}
	})
	t.Run("while backing off", func(t *testing.T) {
		r := newReplica(t, refuse(503, "not_leader", "no leader"))
		c, err := New([]string{r.URL}, "tok", WithRetry(100, time.Hour, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = c.Locks(ctx, "c1")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, manager.ErrNotLeader) {
			t.Errorf("err = %v, want the deadline and the last error, not_leader", err)
		}
	})
}

func TestGivesUpAfterAttempts(t *testing.T) {
	r := newReplica(t, refuse(503, "not_leader", "no leader"))
	c, err := New([]string{r.URL}, "", WithRetry(3, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	if !errors.Is(err, manager.ErrNotLeader) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Errorf("err = %v", err)
	}
	if got := r.hits.Load(); got != 3 {
		t.Errorf("hits = %d, want 3", got)
	}
}

func TestRequests(t *testing.T) {
	var method, uri, body string
	r := newReplica(t, func(w http.ResponseWriter, req *http.Request) {
		method, uri = req.Method, req.URL.RequestURI()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := req.Body.Read(buf)
		b.Write(buf[:n])
		body = b.String()
		switch req.URL.Path {
		case "/v1/locks", "/v1/reports", "/v1/history":
			answer(w, 200, []any{})
		case "/v1/status":
			answer(w, 200, map[string]any{"id": "m1", "state": "Leader", "peers": []any{"m2", map[string]string{"id": "m3", "address": "a:1"}}})
		case "/v1/goals":
			if req.Method == http.MethodGet {
				answer(w, 200, map[string]any{"merged": "x: 1", "levels": map[string]string{"rack": "x: 1"}})
				return
			}
			w.WriteHeader(204)
		default:
			answer(w, 200, manager.Grant{ID: "g"})
		}
	})
	c, err := New([]string{r.URL + "/"}, "tok")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name                 string
		call                 func() error
		method, uri, bodyHas string
	}{
		{"validate", func() error { _, err := c.Validate(ctx, "g 1", 42); return err },
			"GET", "/v1/locks/validate?grant_id=g+1&token=42", ""},
		{"locks", func() error { _, err := c.Locks(ctx, "c1"); return err }, "GET", "/v1/locks?cluster=c1", ""},
		{"locks of every cluster", func() error { _, err := c.Locks(ctx, ""); return err }, "GET", "/v1/locks", ""},
		{"history", func() error { _, err := c.History(ctx, 5, 10, 0); return err }, "GET", "/v1/history?from=5&limit=10", ""},
		{"history wait", func() error { _, err := c.History(ctx, 0, 0, 30*time.Second); return err }, "GET", "/v1/history?from=0&wait=30s", ""},
		{"renew", func() error {
			_, err := c.Renew(ctx, manager.Renew{GrantID: "g", Token: 3, Lease: time.Second})
			return err
		},
			"POST", "/v1/locks/renew", `"lease":1000000000`},
		{"checkpoint", func() error {
			_, err := c.Checkpoint(ctx, manager.Checkpoint{GrantID: "g", Token: 3, Step: "drain"})
			return err
		}, "POST", "/v1/locks/checkpoint", `"step":"drain"`},
		{"force-release", func() error {
			_, err := c.ForceRelease(ctx, manager.ForceRelease{GrantID: "g", Reason: "dead", By: "ops"})
			return err
		}, "POST", "/v1/locks/force-release", `"reason":"dead"`},
		{"healthy", func() error { return c.Healthy(ctx, manager.Healthy{Cluster: "c1", Node: "n1"}) }, "POST", "/v1/nodes/healthy", `"node":"n1"`},
		{"set goals", func() error {
			return c.SetGoals(ctx, manager.SetGoals{Level: manager.LevelRack, Key: "r1", Document: "x: 1"})
		},
			"PUT", "/v1/goals", `"level":"rack"`},
		{"goals", func() error {
			g, err := c.Goals(ctx, manager.Where{Cluster: "c1", Rack: "r1"})
			if err == nil && g.Levels[manager.LevelRack] != "x: 1" {
				return errors.New("levels not decoded")
			}
			return err
		}, "GET", "/v1/goals?cluster=c1&rack=r1", ""},
		{"reports", func() error { _, err := c.Reports(ctx, "n1"); return err }, "GET", "/v1/reports?node=n1", ""},
		{"report", func() error {
			return c.Report(ctx, manager.Report{Node: "n1", ID: "d1", Decision: json.RawMessage(`{}`)})
		},
			"POST", "/v1/reports", `"id":"d1"`},
		{"status", func() error {
			s, err := c.Status(ctx)
			if err == nil && (len(s.Peers) != 2 || s.Peers[0].ID != "m2" || s.Peers[1].Address != "a:1") {
				return errors.New("peers not decoded")
			}
			return err
		}, "GET", "/v1/status", ""},
		{"join", func() error { return c.Join(ctx, Peer{ID: "m2", Address: "h:7000", HTTP: "h:19649"}) },
			"POST", "/v1/peers/join", `"http":"h:19649"`},
		{"remove", func() error { return c.Remove(ctx, "m2") }, "POST", "/v1/peers/remove", `{"id":"m2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if method != tt.method || uri != tt.uri {
				t.Errorf("request = %s %s, want %s %s", method, uri, tt.method, tt.uri)
			}
			if !strings.Contains(body, tt.bodyHas) {
				t.Errorf("body = %s, want it to contain %s", body, tt.bodyHas)
			}
		})
	}
}

func TestFollow(t *testing.T) {
	r := newReplica(t, func(w http.ResponseWriter, req *http.Request) {
		from := req.URL.Query().Get("from")
		switch from {
		case "3":
			answer(w, 200, []manager.Event{{Index: 3, Kind: "grant"}, {Index: 4, Kind: "renew"}})
		case "5":
			answer(w, 200, []manager.Event{{Index: 5, Kind: "release"}})
		default:
			answer(w, 400, map[string]string{"error": "from " + from, "code": "bad_request"})
		}
	})
	c, err := New([]string{r.URL}, "", fast())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	stop := errors.New("stop")
	err = c.Follow(context.Background(), 3, func(ev manager.Event) error {
		kinds = append(kinds, ev.Kind)
		if ev.Index == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Follow = %v, want the callback's error", err)
	}
	if got, want := strings.Join(kinds, ","), "grant,renew,release"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		endpoints []string
		tls       bool
		want      string // the first endpoint, or the error
	}{
		{[]string{"http://m1:19649/"}, false, "http://m1:19649"},
		{[]string{"m1:19649"}, false, "http://m1:19649"},
		{[]string{"m1:19649"}, true, "https://m1:19649"},
		{nil, false, "no endpoints"},
		{[]string{"ftp://m1"}, false, `endpoint "ftp://m1": want a URL like http://localhost:19649`},
		{[]string{"http://"}, false, "want a URL"},
	}
	for _, tt := range tests {
		var opts []Option
		if tt.tls {
			opts = append(opts, WithTLS(&tls.Config{}))
		}
		c, err := New(tt.endpoints, "", opts...)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = c.endpoints[0]
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("New(%q) = %q, want %q", tt.endpoints, got, tt.want)
		}
	}
}

func TestAPIErrorText(t *testing.T) {
	r := newReplica(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(502)
		w.Write([]byte("<html>bad gateway</html>"))
	})
	c, err := New([]string{r.URL}, "", WithRetry(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Locks(context.Background(), "c1")
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway: <html>bad gateway</html>") {
		t.Errorf("err = %v", err)
	}
}
