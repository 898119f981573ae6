// Command manager measures the rack-lock manager: a cluster of three real
// `nerve manager` replicas on 127.0.0.1, one client. It prints the latency
// of acquire and release (p50, p99) over many cycles, and the time from a
// SIGKILL of the leader to the next successful grant, over a few kills
// (median). Targets: p99 under 20 ms, failover under 3 s.
//
// It only prints: no figure is asserted. Run it from the repository root:
//
//	go run ./test/bench/manager -cycles 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
	"github.com/nervehq/nerve/test/manager/cluster"
)

const token = "bench-token"

func main() {
	nerve := flag.String("nerve", "", "the nerve binary (default: build ./cmd/nerve)")
	cycles := flag.Int("cycles", 1000, "acquire/release cycles for the latency figures")
	kills := flag.Int("kills", 3, "leader kills for the failover figure")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*nerve, *cycles, *kills); err != nil {
		log.Fatalf("bench-manager: %v", err)
	}
}

func run(bin string, cycles, kills int) error {
	dir, err := os.MkdirTemp("", "nerve-bench-manager-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "nerve")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/nerve").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/nerve: %w\n%s", err, out)
		}
	}
	c, err := cluster.Start(cluster.Options{Binary: bin, Dir: dir, Token: token})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(wait); err != nil {
		return err
	}
	cl, err := client.New(c.Endpoints(), token)
	if err != nil {
		return err
	}

	// Warm up: the first requests pay for connections and the leader's barrier.
	if _, _, err := cycle(ctx, cl, "warmup"); err != nil {
		return err
	}
	var acq, rel []time.Duration
	for i := range cycles {
		a, r, err := cycle(ctx, cl, fmt.Sprintf("lat-%d", i))
		if err != nil {
			return err
		}
		acq, rel = append(acq, a), append(rel, r)
	}
	fmt.Printf("manager: 3 replicas on 127.0.0.1, %d acquire/release cycles from one client\n", cycles)
	fmt.Printf("  acquire  p50 %7s  p99 %7s  max %7s\n", pct(acq, 50), pct(acq, 99), pct(acq, 100))
	fmt.Printf("  release  p50 %7s  p99 %7s  max %7s\n", pct(rel, 50), pct(rel, 99), pct(rel, 100))
	fmt.Printf("  target: p99 < 20ms\n")

	var fails []time.Duration
	for i := range kills {
		d, err := failover(ctx, c, cl, i)
		if err != nil {
			return err
		}
		fmt.Printf("  failover %d: %s from SIGKILL of the leader to the next grant\n", i+1, d.Round(time.Millisecond))
		fails = append(fails, d)
	}
	if len(fails) > 0 {
		fmt.Printf("  failover median %s over %d kills (target < 3s)\n", pct(fails, 50).Round(time.Millisecond), len(fails))
	}
	return nil
}

// cycle acquires and releases once, timing each call.
func cycle(ctx context.Context, cl *client.Client, req string) (acq, rel time.Duration, err error) {
	start := time.Now()
	g, err := cl.Acquire(ctx, manager.Acquire{Cluster: "bench", Rack: "r1", Node: "n1", Operation: "bench", RequestID: req, Lease: time.Minute})
	if err != nil {
		return 0, 0, err
	}
	acq = time.Since(start)
	start = time.Now()
	if _, err := cl.Release(ctx, manager.Release{GrantID: g.ID, Token: g.Token}); err != nil {
		return 0, 0, err
	}
	return acq, time.Since(start), nil
}

// failover kills the leader and acquires until a grant comes, then
// restarts the replica and waits until every replica is back.
func failover(ctx context.Context, c *cluster.Cluster, cl *client.Client, n int) (time.Duration, error) {
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(wait)
	if err != nil {
		return 0, err
	}
	// One short attempt at a time, turning through the replicas, so a
	// request stuck on the dead leader costs little.
	var fast []*client.Client
	for _, r := range c.Replicas {
		fast = append(fast, r.Client(250*time.Millisecond))
	}
	killed := time.Now()
	leader.Kill()
	req := fmt.Sprintf("failover-%d", n)
	var took time.Duration
	for i := 0; ; i++ {
		g, err := fast[i%len(fast)].Acquire(wait, manager.Acquire{Cluster: "bench", Rack: "r1", Node: "n1", Operation: "bench", RequestID: req, Lease: time.Minute})
		if err == nil {
			took = time.Since(killed)
			if _, err := cl.Release(wait, manager.Release{GrantID: g.ID, Token: g.Token}); err != nil {
				return 0, err
			}
			break
		}
		if wait.Err() != nil {
			return 0, fmt.Errorf("no grant within 30s of killing %s: %w", leader.ID, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := leader.Start(); err != nil {
		return 0, err
	}
	// Let the restarted replica catch up before the next kill.
	for _, r := range c.Replicas {
		for {
			if _, err := r.Status(wait); err == nil {
				break
			}
			if wait.Err() != nil {
				return 0, fmt.Errorf("replica %s did not come back: %w", r.ID, wait.Err())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	return took, nil
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i, 1), len(s)) - 1
	return s[i].Round(10 * time.Microsecond)
}
