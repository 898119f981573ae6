package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
	"github.com/nervehq/nerve/manager/server"

	"github.com/nervehq/nerve/internal/nervetest"
)

func TestParseManagerFlags(t *testing.T) {
	tests := []struct {
		args    []string
		command string
		check   func(inv invocation) string // "" when right
	}{
		{[]string{"lock", "list"}, "lock list", func(inv invocation) string {
			return eq(strings.Join(*inv.manager.endpoints, ","), client.DefaultEndpoint)
		}},
		{[]string{"--manager.endpoint=http://m1:19649", "lock", "list", "--manager.endpoint=m2:19649", "--json"}, "lock list",
			func(inv invocation) string {
				return eq(strings.Join(*inv.manager.endpoints, ","), "http://m1:19649,m2:19649") +
					eq(fmt.Sprint(*inv.manager.lockJSON), "true")
			}},
		{[]string{"lock", "acquire", "--cluster=c1", "--rack=r1", "--node=n1", "--lease=2m", "--manager.token-file=/t"}, "lock acquire",
			func(inv invocation) string {
				m := inv.manager
				return eq(*m.cluster+"/"+*m.rack+"/"+*m.node+"/"+*m.op, "c1/r1/n1/manual") + eq(m.lease.String(), "2m0s") +
					eq(*m.tokenFile, "/t")
			}},
		{[]string{"lock", "renew", "--grant-id=g1", "--token=42"}, "lock renew", func(inv invocation) string {
			return eq(fmt.Sprintf("%s %d %v", *inv.manager.grantID, *inv.manager.token, *inv.manager.lease), "g1 42 1m0s")
		}},
		{[]string{"lock", "force-release", "--grant-id=g1", "--reason=node dead", "--by=ops"}, "lock force-release",
			func(inv invocation) string { return eq(*inv.manager.reason+"|"+*inv.manager.by, "node dead|ops") }},
		{[]string{"history", "--from=7", "--follow"}, "history", func(inv invocation) string {
			return eq(fmt.Sprint(*inv.manager.from, *inv.manager.follow), "7 true")
		}},
		{[]string{"goals", "get", "--cluster=c1", "--rack=r1"}, "goals get", func(inv invocation) string {
			return eq(fmt.Sprintf("%+v", inv.manager.where), "{Cluster:c1 Environment: Region: Zone: Rack:r1 Node:}")
		}},
		{[]string{"goals", "set", "--level=rack", "--key=r1", "--file=-"}, "goals set", func(inv invocation) string {
			return eq(*inv.manager.level+" "+*inv.manager.key+" "+*inv.manager.file, "rack r1 -")
		}},
		{[]string{"manager", "status"}, "manager status", func(invocation) string { return "" }},
		{[]string{"manager", "join", "--id=m4", "--address=10.0.0.4:7946", "--http=10.0.0.4:19649"}, "manager join",
			func(inv invocation) string {
				return eq(*inv.manager.joinID+" "+*inv.manager.joinRaft+" "+*inv.manager.joinHTTP, "m4 10.0.0.4:7946 10.0.0.4:19649")
			}},
		// The line test/manager/cluster starts replicas with: `manager`
		// alone runs one.
		{[]string{"manager", "--id=m1", "--dir=/var/lib/nerve-manager", "--bind=10.0.0.1:7946", "--http=10.0.0.1:19649",
			"--tokens-file=/etc/nerve/tokens", "--bootstrap", "--peer=m1=10.0.0.1:7946,10.0.0.1:19649"}, "manager run",
			func(inv invocation) string {
				r := inv.manager.replica
				return eq(fmt.Sprintf("%s %s %s %s %s %v", r.ID, r.Dir, r.BindAddr, r.HTTPAddr, r.TokensFile, r.Bootstrap),
					"m1 /var/lib/nerve-manager 10.0.0.1:7946 10.0.0.1:19649 /etc/nerve/tokens true") +
					eq(strings.Join(*inv.manager.replicaPeers, " "), "m1=10.0.0.1:7946,10.0.0.1:19649")
			}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			inv, code, ok := parse(tt.args, &stdout, &stderr)
			if !ok {
				t.Fatalf("parse: code %d, stderr %q", code, stderr.String())
			}
			if inv.command != tt.command {
				t.Errorf("command = %q, want %q", inv.command, tt.command)
			}
			if msg := tt.check(inv); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func eq(got, want string) string {
	if got != want {
		return fmt.Sprintf("got %q, want %q; ", got, want)
	}
	return ""
}

func TestParsePeer(t *testing.T) {
	p, err := parsePeer("m1=10.0.0.1:7946,10.0.0.1:19649")
	if err != nil || p != (server.Peer{ID: "m1", Address: "10.0.0.1:7946", HTTP: "10.0.0.1:19649"}) {
		t.Errorf("parsePeer = %+v, %v", p, err)
	}
	for _, bad := range []string{"m1", "m1=10.0.0.1:7946", "=a,b", "m1=,b", "m1=a,"} {
		if _, err := parsePeer(bad); err == nil {
			t.Errorf("parsePeer(%q) = nil error", bad)
		}
	}
}

// fakeAPI answers every route with fixed values and records the requests.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string // "METHOD URI BODY AUTH"
}

var (
	at        = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	fakeGrant = manager.Grant{ID: "g-7", Token: 7, Cluster: "c1", Rack: "r1", Node: "n1", Operation: "manual",
		RequestID: "req-1", State: manager.Held, Granted: at, Expires: at.Add(time.Minute)}
)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Method, r.URL.RequestURI(), body, r.Header.Get("Authorization"))))
		f.mu.Unlock()
		reply := func(status int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(v)
		}
		switch r.URL.Path {
		case "/v1/locks/acquire", "/v1/locks/renew", "/v1/locks/force-release":
			reply(200, fakeGrant)
		case "/v1/locks/release":
			reply(409, map[string]string{"error": "stale or unknown grant token", "code": "stale_token"})
		case "/v1/locks":
			reply(200, []manager.Grant{fakeGrant})
		case "/v1/history":
			reply(200, []manager.Event{{Index: 3, At: at, Kind: "grant", Grant: &fakeGrant}, {Index: 4, At: at, Kind: "goals", Detail: "rack r1"}})
		case "/v1/goals":
			if r.Method == http.MethodPut {
				reply(200, map[string]uint64{"index": 9})
				return
			}
			reply(200, client.Goals{Merged: "disk:\n  slow: 50ms\n", Levels: map[manager.Level]string{manager.LevelRack: "disk:\n  slow: 50ms\n"}})
		case "/v1/status":
			reply(200, client.Status{ID: "m1", State: "Leader", Leader: "m1", LeaderHTTP: "10.0.0.1:19649", AppliedIndex: 12, LastIndex: 12,
				Peers: []client.Peer{{ID: "m1", Address: "10.0.0.1:7946", HTTP: "10.0.0.1:19649", Suffrage: "Voter"}}})
		case "/v1/peers/join", "/v1/peers/remove":
			reply(200, map[string]uint64{"index": 13})
		default:
			reply(404, map[string]string{"error": "not found", "code": "not_found"})
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return ""
	}
	return f.reqs[len(f.reqs)-1]
}

func TestManagerCommands(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	goalsFile := filepath.Join(dir, "goals.yaml")
	os.WriteFile(tokenFile, []byte("tok\n"), 0o600)
	os.WriteFile(goalsFile, []byte("disk:\n  slow: 50ms\n"), 0o600)
	common := []string{"--manager.endpoint=" + f.URL, "--manager.token-file=" + tokenFile}
	tests := []struct {
		args     []string
		wantCode int
		stdout   []string // each must appear
		request  string   // the last request must start with it
	}{
		{[]string{"lock", "acquire", "--cluster=c1", "--rack=r1", "--node=n1", "--request-id=req-1"}, exitOK,
			[]string{"grant g-7 token 7: held\n", "  rack      c1/r1\n", "  expires   2025-03-01T12:01:00Z\n"},
			`POST /v1/locks/acquire {"cluster":"c1","rack":"r1","node":"n1","operation":"manual","request_id":"req-1","lease":60000000000} Bearer tok`},
		{[]string{"lock", "acquire", "--cluster=c1", "--rack=r1", "--json"}, exitOK, []string{`"token": 7,`}, "POST /v1/locks/acquire"},
		{[]string{"lock", "renew", "--grant-id=g-7", "--token=7", "--lease=30s"}, exitOK, []string{"grant g-7 token 7"},
			`POST /v1/locks/renew {"grant_id":"g-7","token":7,"lease":30000000000}`},
		{[]string{"lock", "release", "--grant-id=g-7", "--token=6"}, exitFailure, nil, `POST /v1/locks/release {"grant_id":"g-7","token":6}`},
		{[]string{"lock", "force-release", "--grant-id=g-7", "--reason=node dead", "--by=ops"}, exitOK, []string{"grant g-7"},
			`POST /v1/locks/force-release {"grant_id":"g-7","reason":"node dead","by":"ops"}`},
		{[]string{"lock", "list", "--cluster=c1"}, exitOK,
			[]string{"ID   TOKEN  RACK   NODE  OPERATION  STATE  EXPIRES               STEP\ng-7  7      c1/r1  n1    manual     held   2025-03-01T12:01:00Z  -\n"},
			"GET /v1/locks?cluster=c1"},
		{[]string{"history", "--from=3", "--limit=2"}, exitOK,
			[]string{"3 2025-03-01T12:00:00Z grant c1/r1 node=n1 op=manual grant=g-7 token=7\n4 2025-03-01T12:00:00Z goals rack r1\n"},
			"GET /v1/history?from=3&limit=2"},
		{[]string{"history", "--json"}, exitOK, []string{"{\"index\":3,", "\n{\"index\":4,"}, "GET /v1/history?from=0&limit=100"},
		{[]string{"goals", "get", "--cluster=c1", "--rack=r1"}, exitOK,
			[]string{"# merged\ndisk:\n  slow: 50ms\n\n# level rack\ndisk:\n"}, "GET /v1/goals?cluster=c1&rack=r1"},
		{[]string{"goals", "set", "--level=rack", "--key=r1", "--file=" + goalsFile}, exitOK, []string{`goals of rack "r1" stored`},
			`PUT /v1/goals {"level":"rack","key":"r1","document":"disk:\n  slow: 50ms\n"}`},
		{[]string{"goals", "set", "--level=node", "--key=n1", "--delete"}, exitOK, []string{`goals of node "n1" deleted`},
			`PUT /v1/goals {"level":"node","key":"n1","document":""}`},
		{[]string{"manager", "status"}, exitOK,
			[]string{"replica m1: Leader\nleader   m1 (api 10.0.0.1:19649)\nindex    applied 12, last 12\n", "m1    10.0.0.1:7946  10.0.0.1:19649  Voter"},
			"GET /v1/status"},
		{[]string{"manager", "status", "--json"}, exitOK, []string{`"leader_http": "10.0.0.1:19649"`}, "GET /v1/status"},
		{[]string{"manager", "join", "--id=m4", "--address=10.0.0.4:7946", "--http=10.0.0.4:19649"}, exitOK,
			[]string{"replica m4 (raft 10.0.0.4:7946, api 10.0.0.4:19649) joined"},
			`POST /v1/peers/join {"id":"m4","address":"10.0.0.4:7946","http":"10.0.0.4:19649"}`},
		{[]string{"manager", "remove", "--id=m4"}, exitOK, []string{"replica m4 removed"}, `POST /v1/peers/remove {"id":"m4"}`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(append(append([]string{}, common...), tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout = %q, want it to contain %q", stdout.String(), want)
				}
			}
			if got := f.last(); !strings.HasPrefix(got, tt.request) {
				t.Errorf("request = %q, want %q", got, tt.request)
			}
		})
	}
}

func TestManagerCommandErrors(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		args     []string
		wantCode int
		stderr   string
	}{
		{[]string{"lock", "release", "--grant-id=g-7", "--token=6"}, exitFailure,
			"nerve: release grant g-7 token 6: manager " + f.URL + ": 409 stale_token: stale or unknown grant token\n"},
		{[]string{"lock", "acquire", "--rack=r1"}, exitUsage, "required flag(s) '--cluster' not provided"},
		{[]string{"goals", "set", "--level=rack", "--key=r1"}, exitUsage, "nerve: goals set: --file is required (or --delete)\n"},
		{[]string{"goals", "set", "--level=rack", "--key=r1", "--file=" + empty}, exitUsage, "is empty; use --delete"},
		{[]string{"goals", "set", "--level=shelf", "--key=r1", "--delete"}, exitUsage, "enum value must be one of cluster,environment,region,zone,rack,node"},
		{[]string{"lock", "list", "--manager.token-file=" + filepath.Join(dir, "nope")}, exitUsage, "nerve: manager token: open"},
		{[]string{"lock", "list", "--manager.endpoint=ftp://x"}, exitUsage, `endpoint "ftp://x": want a URL like http://localhost:19649`},
		{[]string{"manager", "--id=m1"}, exitUsage, "'--dir'"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(append([]string{"--manager.endpoint=" + f.URL}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// The commands against a real replica (manager/server on TCP, one voter):
// the client and the server agree on the API.
func TestManagerCommandsAgainstReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a raft replica")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("tok\n"), 0o600)
	raftAddr, httpAddr := nervetest.FreeAddr(t), nervetest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{ID: "m1", Dir: filepath.Join(dir, "state"), BindAddr: raftAddr, HTTPAddr: httpAddr,
			TokensFile: tokens, Bootstrap: true, Peers: []server.Peer{{ID: "m1", Address: raftAddr, HTTP: httpAddr}},
			Logger: slogDiscard()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	common := []string{"--manager.endpoint=http://" + httpAddr, "--manager.token-file=" + tokens}
	cli := func(args ...string) (string, int) {
		var stdout, stderr strings.Builder
		code := run(append(append([]string{}, common...), args...), &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	// Wait for the election.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code := cli("manager", "status")
		if code == exitOK && strings.Contains(out, ": Leader") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	out, code := cli("lock", "acquire", "--cluster=c1", "--rack=r1", "--node=n1", "--request-id=req-1", "--json")
	if code != exitOK {
		t.Fatalf("acquire: %s", out)
	}
	var g manager.Grant
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.State != manager.Held {
		t.Fatalf("acquire printed %q (%v)", out, err)
	}
	if out, code := cli("lock", "acquire", "--cluster=c1", "--rack=r2", "--node=n2"); code != exitFailure || !strings.Contains(out, "rack_busy") {
		t.Errorf("acquire of a second rack: code %d, %s", code, out)
	}
	if out, _ := cli("lock", "list"); !strings.Contains(out, g.ID) {
		t.Errorf("list: %s", out)
	}
	tok := fmt.Sprint(g.Token)
	if out, code := cli("lock", "renew", "--grant-id="+g.ID, "--token="+tok); code != exitOK {
		t.Errorf("renew: %s", out)
	}
	if out, code := cli("lock", "release", "--grant-id="+g.ID, "--token="+tok); code != exitOK || !strings.Contains(out, "released") {
		t.Errorf("release: %s", out)
	}
	if out, code := cli("lock", "release", "--grant-id="+g.ID, "--token="+tok); code != exitFailure || !strings.Contains(out, "stale_token") {
		t.Errorf("second release: code %d, %s", code, out)
	}
	if out, code := cli("goals", "set", "--level=cluster", "--key=c1", "--delete"); code != exitOK {
		t.Errorf("goals set: %s", out)
	}
	if out, code := cli("history", "--from=0"); code != exitOK || !strings.Contains(out, " grant ") || !strings.Contains(out, " release ") {
		t.Errorf("history: code %d, %s", code, out)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
