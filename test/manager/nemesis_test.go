package manager_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nervehq/nerve/test/manager/cluster"
)

// nemesis injects one fault at a time, in turn: SIGKILL of the leader and
// a restart on the same state, SIGSTOP of a replica (the leader every other
// time) for longer than the leases, the leader cut from its peers while
// clients still reach it, and a replica cut off the network altogether.
type nemesis struct {
	c    *cluster.Cluster
	logf func(format string, args ...any)
	rec  *recorder

	mu     sync.Mutex
	counts map[string]int // guarded by mu
}

// run injects faults until ctx ends, then heals everything and returns.
func (n *nemesis) run(ctx context.Context) {
	defer func() {
		if err := n.c.Heal(); err != nil {
			n.logf("nemesis: heal: %v", err)
		}
	}()
	faults := []func(context.Context) string{n.killLeader, n.pause, n.cutLeader, n.isolate}
	for i := 0; ; i++ {
		if !sleepCtx(ctx, time.Duration(1000+rand.IntN(2000))*time.Millisecond) {
			return
		}
		what := faults[i%len(faults)](ctx)
		if what == "" {
			continue
		}
		n.mu.Lock()
		if n.counts == nil {
			n.counts = map[string]int{}
		}
		n.counts[strings.Fields(what)[0]]++
		n.mu.Unlock()
		n.logf("nemesis %s: %s", ms(n.rec.now()), what)
	}
}

func (n *nemesis) leader(ctx context.Context) *cluster.Replica {
	l, err := n.c.WaitLeader(withTimeout(ctx, 10*time.Second))
	if err != nil {
		return nil
	}
	return l
}

func (n *nemesis) killLeader(ctx context.Context) string {
	l := n.leader(ctx)
	if l == nil {
		return ""
	}
	l.Kill()
	down := time.Duration(500+rand.IntN(2000)) * time.Millisecond
	sleepCtx(ctx, down)
	if err := l.Start(); err != nil {
		return fmt.Sprintf("kill %s (restart failed: %v)", l.ID, err)
	}
	return fmt.Sprintf("kill leader %s, restarted after %s", l.ID, down)
}

func (n *nemesis) pause(ctx context.Context) string {
	r := n.c.Replicas[rand.IntN(len(n.c.Replicas))]
	n.mu.Lock()
	leaderTurn := n.counts["pause"]%2 == 0
	n.mu.Unlock()
	if leaderTurn {
		if l := n.leader(ctx); l != nil {
			r = l
		}
	}
	if err := r.Stop(); err != nil {
		return ""
	}
	sleepCtx(ctx, pauseFor)
	r.Cont()
	return fmt.Sprintf("pause %s (leader %v) for %s", r.ID, leaderTurn, pauseFor)
}

func (n *nemesis) cutLeader(ctx context.Context) string {
	l := n.leader(ctx)
	if l == nil {
		return ""
	}
	i := n.index(l)
	if err := n.c.CutFromPeers(i); err != nil {
		return fmt.Sprintf("cut %s: %v", l.ID, err)
	}
	d := time.Duration(3000+rand.IntN(2000)) * time.Millisecond
	sleepCtx(ctx, d)
	if err := n.c.Heal(); err != nil {
		return fmt.Sprintf("cut leader %s (heal: %v)", l.ID, err)
	}
	return fmt.Sprintf("cut leader %s from its peers for %s", l.ID, d)
}

func (n *nemesis) isolate(ctx context.Context) string {
	i := rand.IntN(len(n.c.Replicas))
	if err := n.c.Isolate(i); err != nil {
		return fmt.Sprintf("isolate: %v", err)
	}
	d := time.Duration(3000+rand.IntN(2000)) * time.Millisecond
	sleepCtx(ctx, d)
	if err := n.c.Heal(); err != nil {
		return fmt.Sprintf("isolate %s (heal: %v)", n.c.Replicas[i].ID, err)
	}
	return fmt.Sprintf("isolate %s for %s", n.c.Replicas[i].ID, d)
}

func (n *nemesis) index(r *cluster.Replica) int {
	for i, x := range n.c.Replicas {
		if x == r {
			return i
		}
	}
	return 0
}

func (n *nemesis) summary() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var parts []string
	total := 0
	for k, v := range n.counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
		total += v
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d events (%s)", total, strings.Join(parts, ", "))
}

// sleepCtx sleeps d or until ctx ends; it says whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
