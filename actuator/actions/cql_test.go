package actions

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCQLLivenessClosedPort(t *testing.T) {
	addr := closedPort(t)
	const timeout = 2 * time.Second
	start := time.Now()
	v, err := CQLLiveness{Hosts: []string{addr}, Timeout: timeout}.Check(context.Background())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("Check = %q, want an error", v)
	}
	for _, s := range []string{"cql liveness", addr} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	// A refused connection is known at once; the timeout is only the bound.
	if elapsed > timeout+time.Second {
		t.Errorf("Check took %v, more than its timeout %v", elapsed, timeout)
	}
	t.Logf("closed port: %v after %v", err, elapsed)
}

// A host that never answers (a listener that accepts and stays silent) is
// bounded by the timeout.
func TestCQLLivenessSilentHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Ends when the listener is closed.
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	const timeout = time.Second
	start := time.Now()
	_, err = CQLLiveness{Hosts: []string{l.Addr().String()}, Timeout: timeout}.Check(context.Background())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Check succeeded against a silent host")
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("Check took %v, more than its timeout %v", elapsed, timeout)
	}
	t.Logf("silent host: %v after %v", err, elapsed)
}

func TestCQLLivenessNoHosts(t *testing.T) {
	if _, err := (CQLLiveness{}).Check(context.Background()); err == nil {
		t.Error("Check with no hosts succeeded")
	}
}
