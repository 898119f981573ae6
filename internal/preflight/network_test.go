package preflight

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var testNet = NetworkSpec{Attempts: 20, Timeout: 2 * time.Second, MaxConnectP99: time.Second}

// listen returns the address of a listener that accepts and closes
// connections until the test ends.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// Ends when the listener is closed.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestPeerListening(t *testing.T) {
	addr := listen(t)
	c := checkPeer(context.Background(), addr, testNet)
	if !c.Pass {
		t.Fatalf("check of a listening peer failed: %s", c.Reason)
	}
	f := c.Network
	if f.Attempts != 20 || f.Failed != 0 {
		t.Errorf("attempts %d, failed %d; want 20, 0", f.Attempts, f.Failed)
	}
	if f.ConnectP99Seconds <= 0 || f.ConnectP99Seconds > f.ConnectMaxSeconds || f.ConnectP50Seconds > f.ConnectP99Seconds {
		t.Errorf("connect figures out of order: %+v", f)
	}
	if !strings.HasPrefix(c.Figure, "connect p99 ") {
		t.Errorf("figure %q, want the connect p99", c.Figure)
	}
}

func TestPeerClosed(t *testing.T) {
	addr := closedPort(t)
	c := checkPeer(context.Background(), addr, testNet)
	if c.Pass {
		t.Fatal("check of a closed port passed")
	}
	want := "peer " + addr + ": 20 of 20 connects failed: connection refused"
	if c.Reason != want {
		t.Errorf("reason %q, want %q", c.Reason, want)
	}
}

func TestPeerAboveGoal(t *testing.T) {
	addr := listen(t)
	spec := testNet
	spec.MaxConnectP99 = time.Nanosecond // no connect is that fast
	c := checkPeer(context.Background(), addr, spec)
	if c.Pass || !strings.HasPrefix(c.Reason, "peer "+addr+": connect p99 ") || !strings.HasSuffix(c.Reason, " above 1ns") {
		t.Errorf("pass %v, reason %q; want a failure naming the peer and its p99 above 1ns", c.Pass, c.Reason)
	}
}

func TestPeerUnresolvable(t *testing.T) {
	c := checkPeer(context.Background(), "nerve-no-such-host.invalid:7000", testNet)
	if c.Pass || !strings.HasPrefix(c.Reason, "peer nerve-no-such-host.invalid:7000: resolve nerve-no-such-host.invalid: ") {
		t.Errorf("pass %v, reason %q; want a resolve failure naming the peer", c.Pass, c.Reason)
	}
}

func TestManagerHealthz(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	c := checkManager(context.Background(), srv.URL, testNet, nil)
	if !c.Pass {
		t.Fatalf("check of a healthy manager failed: %s", c.Reason)
	}
	if c.Network.HealthzStatus != 200 || c.Network.HealthzSeconds <= 0 {
		t.Errorf("healthz figures %+v", c.Network)
	}

	status = http.StatusServiceUnavailable
	c = checkManager(context.Background(), srv.URL, testNet, nil)
	if want := "manager " + srv.URL + ": GET /healthz answered 503 Service Unavailable"; c.Pass || c.Reason != want {
		t.Errorf("pass %v, reason %q; want %q", c.Pass, c.Reason, want)
	}

	dead := "http://" + closedPort(t)
	c = checkManager(context.Background(), dead, testNet, nil)
	if want := "manager " + dead + ": 20 of 20 connects failed: connection refused"; c.Pass || c.Reason != want {
		t.Errorf("pass %v, reason %q; want %q", c.Pass, c.Reason, want)
	}
}

// TestRun checks the whole result: order, pass, the reasons, the table.
func TestRun(t *testing.T) {
	up, down := listen(t), closedPort(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := Run(context.Background(), logger, "n1", Spec{Peers: []string{up, down}, Network: testNet})
	if r.Pass || r.Kind != "preflight" || r.Node != "n1" || len(r.Checks) != 2 {
		t.Fatalf("result %+v; want a failed preflight of n1 with 2 checks", r)
	}
	if got := r.Failures(); len(got) != 1 || !strings.HasPrefix(got[0], "peer "+down+": ") {
		t.Errorf("failures %q; want one naming %s", got, down)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "CHECK") ||
		!strings.Contains(lines[1], " pass") || !strings.Contains(lines[2], " FAIL ") || !strings.Contains(lines[2], "connection refused") {
		t.Errorf("table:\n%s", b.String())
	}
}
