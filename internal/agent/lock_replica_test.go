package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/server"
)

// ManagerLock against a real replica (manager/server, one voter): the lease
// is kept alive past its length while held, and the grant the controller
// hands back (its decision ID, the token) validates and releases.
func TestManagerLockAgainstReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a raft replica")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	raftAddr, httpAddr := addr(), addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{ID: "m1", Dir: filepath.Join(dir, "state"), BindAddr: raftAddr, HTTPAddr: httpAddr,
			TokensFile: tokens, Bootstrap: true, Peers: []server.Peer{{ID: "m1", Address: raftAddr, HTTP: httpAddr}},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})

	lock := func(rack string) *ManagerLock {
		l, err := NewManagerLock(config.Manager{Endpoints: []string{"http://" + httpAddr}, TokenFile: tokens,
			Cluster: "prod", Rack: rack, Node: "node-" + rack, Lease: 1500 * time.Millisecond},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	r1, r2 := lock("r1"), lock("r2")
	var g actuator.Grant
	waitFor(t, "a leader to grant the lock", func() bool {
		var err error
		g, err = r1.Acquire("jvmquake", "dec-1")
		return err == nil
	})
	if _, err := r2.Acquire("jvmquake", "dec-2"); !errors.Is(err, actuator.ErrLockDenied) || !errors.Is(err, manager.ErrRackBusy) {
		t.Errorf("Acquire of a second rack = %v, want ErrLockDenied and ErrRackBusy", err)
	}
	asController := actuator.Grant{ID: "dec-1", Token: g.Token}

	// Steps are checkpointed under the token, decisions land in the
	// manager's history, and the merged goals come back for this node.
	if err := r1.Checkpoint(asController, "dump and kill JVM 42"); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	held, err := r1.client.Locks(context.Background(), "prod")
	if err != nil || len(held) != 1 || held[0].Step != "dump and kill JVM 42" {
		t.Errorf("locks after checkpoint = %+v, %v", held, err)
	}
	if err := r1.Publish(context.Background(), "dec-1", []byte(`{"id":"dec-1","outcome":"done"}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if rs, err := r1.client.Reports(context.Background(), "node-r1"); err != nil || len(rs) != 1 || rs[0].ID != "dec-1" {
		t.Errorf("reports at the manager = %+v, %v", rs, err)
	}
	if err := r1.client.SetGoals(context.Background(), manager.SetGoals{Level: manager.LevelCluster, Key: "prod",
		Document: "disk:\n  queue_p99: {enter: 200ms, exit: 100ms}\n"}); err != nil {
		t.Fatalf("SetGoals: %v", err)
	}
	if doc, err := r1.Goals(context.Background()); err != nil || !strings.Contains(doc, "200ms") {
		t.Errorf("merged goals = %q, %v", doc, err)
	}

	time.Sleep(3 * time.Second) // two leases: the leader's expiry would have marked an unrenewed grant suspect
	if err := r1.Validate(asController); err != nil {
		t.Fatalf("Validate after two leases: %v", err)
	}
	if err := r1.Release(asController); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := r1.Validate(asController); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate after Release = %v, want ErrLockDenied", err)
	}
	if _, err := r2.Acquire("jvmquake", "dec-3"); err != nil {
		t.Errorf("Acquire of the second rack after Release = %v", err)
	}
}
