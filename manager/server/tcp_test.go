package server

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nervehq/nerve/manager"

	"github.com/nervehq/nerve/internal/nervetest"
)

func tcpConfigs(t *testing.T, n int) []Config {
	t.Helper()
	var peers []Peer
	for i := 0; i < n; i++ {
		peers = append(peers, Peer{ID: "t" + string(rune('0'+i)), Address: nervetest.FreeAddr(t), HTTP: nervetest.FreeAddr(t)})
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# agents\n"+testToken+"\n\nother-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfgs []Config
	for i, p := range peers {
		cfgs = append(cfgs, Config{
			ID:             p.ID,
			Dir:            filepath.Join(dir, p.ID),
			BindAddr:       p.Address,
			HTTPAddr:       p.HTTP,
			Bootstrap:      true,
			Peers:          peers,
			TokensFile:     tokens,
			Logger:         testLogger().With("i", i),
			ApplyTimeout:   2 * time.Second,
			ExpireInterval: time.Hour,
			Tune: func(c *raft.Config) {
				c.HeartbeatTimeout = 200 * time.Millisecond
				c.ElectionTimeout = 200 * time.Millisecond
				c.LeaderLeaseTimeout = 200 * time.Millisecond
				c.CommitTimeout = 5 * time.Millisecond
				c.TrailingLogs = 2 // a replica that was down gets a snapshot, not the log
			},
		})
	}
	return cfgs
}

func startTCP(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

// TestRestartFromDisk runs 3 replicas over TCP with state on disk, stops a
// follower, moves on and compacts the log, and restarts the follower: it
// finds its state, does not bootstrap again, and catches up.
func TestRestartFromDisk(t *testing.T) {
	cfgs := tcpConfigs(t, 3)
	servers := make([]*Server, 3)
	for i, cfg := range cfgs {
		servers[i] = startTCP(t, cfg)
		if !servers[i].bootstrapped {
			t.Fatalf("%s: first start did not bootstrap", cfg.ID)
		}
	}
	t.Cleanup(func() {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
	})
	l := waitLeader(t, servers)
	fi := (l + 1) % 3
	var g manager.Grant
	mustCall(t, servers[fi], "POST", "/v1/locks/acquire", acquire("r1", "n1", "q1"), http.StatusOK, &g)
	eventually(t, 5*time.Second, "follower applies", func() bool { return len(servers[fi].fsm.Locks("c1")) == 1 })
	if err := servers[fi].raft.Snapshot().Error(); err != nil {
		t.Fatalf("follower snapshot: %v", err)
	}
	if err := servers[fi].Close(); err != nil {
		t.Fatal(err)
	}
	servers[fi] = nil

	leader := servers[l]
	mustCall(t, leader, "POST", "/v1/locks/release", manager.Release{GrantID: g.ID, Token: g.Token}, http.StatusOK, nil)
	var g2 manager.Grant
	for i := 0; i < 5; i++ {
		mustCall(t, leader, "POST", "/v1/reports", manager.Report{Node: "n2", ID: "d" + string(rune('0'+i)), Decision: []byte(`{}`)}, http.StatusOK, nil)
	}
	mustCall(t, leader, "POST", "/v1/locks/acquire", acquire("r2", "n2", "q2"), http.StatusOK, &g2)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	snaps, err := os.ReadDir(filepath.Join(cfgs[l].Dir, "snapshots"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("leader snapshots: %v, %d", err, len(snaps))
	}

	servers[fi] = startTCP(t, cfgs[fi])
	if servers[fi].bootstrapped {
		t.Fatal("restarted replica bootstrapped again")
	}
	eventually(t, 10*time.Second, "restarted replica catches up", func() bool {
		ls := servers[fi].fsm.Locks("c1")
		return servers[fi].fsm.LastIndex() >= leader.fsm.LastIndex() && len(ls) == 1 && ls[0].ID == g2.ID
	})
	if got := len(servers[fi].fsm.Reports("n2", 0)); got != 5 {
		t.Fatalf("restarted replica has %d reports, want 5", got)
	}
	// It serves, and forwards to the leader, like any replica.
	mustCall(t, servers[fi], "GET", validatePath(g2), nil, http.StatusOK, nil)
	status, _ := call(t, servers[fi], "GET", "/v1/status", "other-token", nil)
	if status != http.StatusOK {
		t.Fatalf("second token from the tokens file: %d, want 200", status)
	}
}

func TestRun(t *testing.T) {
	cfg := tcpConfigs(t, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	eventually(t, 10*time.Second, "single replica serves", func() bool {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{ID: "m1", Dir: "/var/lib/nerve", BindAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:7001", TokensFile: "/etc/nerve/tokens"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	listenAll := good
	listenAll.HTTPAddr = "0.0.0.0:7001"
	listenAll.Peers = []Peer{{ID: "m1", Address: "10.0.0.1:7000", HTTP: "10.0.0.1:7001"}}
	if err := listenAll.Validate(); err != nil {
		t.Fatalf("http_addr on every interface with a dialable peers entry: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		wants []string // every one must appear in the error
	}{
		{"no id", func(c *Config) { c.ID = "" }, []string{"id"}},
		{"no dir", func(c *Config) { c.Dir = "" }, []string{"dir"}},
		{"unspecified bind, no advertise", func(c *Config) { c.BindAddr = "0.0.0.0:7000" }, []string{"advertise_addr", "bind_addr"}},
		{"unspecified advertise v6", func(c *Config) { c.AdvertiseAddr = "[::]:7000" }, []string{"advertise_addr", "bind_addr"}},
		{"no tokens", func(c *Config) { c.TokensFile = "" }, []string{"tokens_file"}},
		{"tokens twice", func(c *Config) { c.Tokens = []string{"x"} }, []string{"tokens_file", "tokens"}},
		{"half tls", func(c *Config) { c.TLS.CertFile = "c.pem" }, []string{"tls.cert_file", "tls.key_file"}},
		{"ca without cert", func(c *Config) { c.TLS.ClientCAFile = "ca.pem" }, []string{"tls.client_ca_file", "tls.cert_file"}},
		{"no http", func(c *Config) { c.HTTPAddr = "" }, []string{"http_addr"}},
		{"bootstrap without self", func(c *Config) {
			c.Bootstrap = true
			c.Peers = []Peer{{ID: "m2", Address: "10.0.0.2:7000"}}
		}, []string{"bootstrap", "peers", "m1"}},
		{"peer address conflict", func(c *Config) {
			c.Bootstrap = true
			c.Peers = []Peer{{ID: "m1", Address: "10.0.0.9:7000"}}
		}, []string{"peers", "advertise_addr"}},
		{"unspecified http, none in peers", func(c *Config) {
			c.HTTPAddr = "0.0.0.0:7001"
			c.Peers = []Peer{{ID: "m1", Address: "10.0.0.1:7000"}}
		}, []string{"http_addr", "peers"}},
		{"unspecified http in peers", func(c *Config) {
			c.Peers = []Peer{{ID: "m1", Address: "10.0.0.1:7000", HTTP: "[::]:7001"}}
		}, []string{"peers", "m1", "http"}},
		{"duplicate peers", func(c *Config) {
			c.Peers = []Peer{{ID: "m1", Address: "10.0.0.1:7000"}, {ID: "m1", Address: "10.0.0.2:7000"}}
		}, []string{"duplicate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	if _, err := New(Config{ID: "m1", Dir: t.TempDir(), BindAddr: "0.0.0.0:0", HTTPAddr: "127.0.0.1:0", Tokens: []string{"x"}}); err == nil {
		t.Fatal("New accepted an unspecified advertise address")
	}
}
