package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const testToken = "s3cret-token"

// testLogger is silent unless NERVE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("NERVE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fastRaft shortens raft's timeouts as raft's own tests do, with some room
// for the race detector on two cores.
func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// inmemCluster is n replicas over raft's in-memory transport, each serving
// its HTTP API on a loopback port.
type inmemCluster struct {
	servers []*Server
	trans   []*raft.InmemTransport
	addrs   []raft.ServerAddress
}

func newInmemCluster(t *testing.T, n int, tune func(*Config)) *inmemCluster {
	t.Helper()
	c := &inmemCluster{}
	var peers []Peer
	var lns []net.Listener
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport("")
		c.addrs = append(c.addrs, addr)
		c.trans = append(c.trans, tr)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		peers = append(peers, Peer{ID: fmt.Sprintf("m%d", i), Address: string(addr), HTTP: ln.Addr().String()})
	}
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.addrs[j], c.trans[j])
			}
		}
	}
	for i := 0; i < n; i++ {
		cfg := Config{
			ID:             peers[i].ID,
			HTTPAddr:       peers[i].HTTP,
			Bootstrap:      true,
			Peers:          peers,
			Tokens:         []string{testToken},
			Logger:         testLogger(),
			ApplyTimeout:   time.Second,
			ExpireInterval: time.Hour,
			Tune:           fastRaft,
		}
		if tune != nil {
			tune(&cfg)
		}
		s, err := NewWithTransport(cfg, c.trans[i])
		if err != nil {
			t.Fatal(err)
		}
		s.httpLn = lns[i]
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Close()
		}
	})
	return c
}

// isolate cuts replica i off from every other replica, both ways.
func (c *inmemCluster) isolate(i int) {
	for j := range c.trans {
		if j != i {
			c.trans[i].Disconnect(c.addrs[j])
			c.trans[j].Disconnect(c.addrs[i])
		}
	}
}

// heal connects replica i to every other replica again.
func (c *inmemCluster) heal(i int) {
	for j := range c.trans {
		if j != i {
			c.trans[i].Connect(c.addrs[j], c.trans[j])
			c.trans[j].Connect(c.addrs[i], c.trans[i])
		}
	}
}

// waitLeader waits for one ready leader among servers (skipping those
// in skip) and returns its position.
func waitLeader(t *testing.T, servers []*Server, skip ...int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range servers {
			if contains(skip, i) || s == nil {
				continue
			}
			if s.raft.State() == raft.Leader && s.awaitLeader(context.Background()) == nil {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader elected within 10s")
	return -1
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// call sends one request to a replica's HTTP API and returns the status
// and body.
func call(t *testing.T, s *Server, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+s.cfg.HTTPAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// mustCall is call that fails the test unless the status is want, and
// decodes the body into out when out is not nil.
func mustCall(t *testing.T, s *Server, method, path string, body any, want int, out any) {
	t.Helper()
	got, raw := call(t, s, method, path, testToken, body)
	if got != want {
		t.Fatalf("%s %s on %s: status %d, want %d; body %s", method, path, s.cfg.ID, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

func errCode(t *testing.T, raw []byte) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("decode error body %s: %v", raw, err)
	}
	return e.Code
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(raw)
}
