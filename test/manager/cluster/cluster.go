package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nervehq/nerve/manager/client"
)

// Options says what cluster to run.
type Options struct {
	// Binary is the nerve binary.
	Binary string
	// Dir holds each replica's state (Dir/rN/data) and log (Dir/rN.log).
	Dir string
	// Replicas is the cluster size (default 3).
	Replicas int
	// Netns puts each replica in a network namespace of its own, on a
	// bridge, so that Isolate and CutFromPeers work. Without it the replicas
	// listen on 127.0.0.1.
	Netns bool
	// Token is the bearer token every replica accepts.
	Token string
	// ExtraArgs are appended to every `nerve manager` command line.
	ExtraArgs []string
}

// Cluster is a running set of replicas.
type Cluster struct {
	opts     Options
	net      *network // nil on loopback
	Replicas []*Replica
}

// Replica is one `nerve manager` process, which may be restarted.
type Replica struct {
	ID       string
	RaftAddr string // host:port
	HTTPAddr string // host:port
	DataDir  string
	LogPath  string
	ns       string // network namespace, "" on loopback
	args     []string
	binary   string
	token    string

	mu     sync.Mutex
	cmd    *exec.Cmd     // guarded by mu; nil when not running
	exited chan struct{} // guarded by mu; closed when cmd has been waited for
	paused bool          // guarded by mu
}

// Start builds the network (with Netns) and starts every replica,
// bootstrapping the cluster. It does not wait for a leader: see WaitLeader.
// On error, what was started is stopped again.
func Start(opts Options) (c *Cluster, err error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Token == "" {
		return nil, errors.New("cluster: no token")
	}
	c = &Cluster{opts: opts}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	tokens := filepath.Join(opts.Dir, "tokens")
	if err := os.WriteFile(tokens, []byte(opts.Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	hosts := make([]string, opts.Replicas)
	raftPorts := make([]int, opts.Replicas)
	httpPorts := make([]int, opts.Replicas)
	if opts.Netns {
		if c.net, err = newNetwork(opts.Replicas); err != nil {
			return nil, err
		}
		for i := range hosts {
			hosts[i], raftPorts[i], httpPorts[i] = c.net.addr(i), 7100, 7101
		}
	} else {
		ports, err := freePorts(2 * opts.Replicas)
		if err != nil {
			return nil, err
		}
		for i := range hosts {
			hosts[i], raftPorts[i], httpPorts[i] = "127.0.0.1", ports[2*i], ports[2*i+1]
		}
	}
	peers := make([]peer, opts.Replicas)
	for i := range peers {
		peers[i] = peer{
			id:   fmt.Sprintf("r%d", i+1),
			raft: net.JoinHostPort(hosts[i], strconv.Itoa(raftPorts[i])),
			http: net.JoinHostPort(hosts[i], strconv.Itoa(httpPorts[i])),
		}
	}
	for i, p := range peers {
		r := &Replica{
			ID:       p.id,
			RaftAddr: p.raft,
			HTTPAddr: p.http,
			DataDir:  filepath.Join(opts.Dir, p.id),
			LogPath:  filepath.Join(opts.Dir, p.id+".log"),
			binary:   opts.Binary,
			token:    opts.Token,
		}
		if c.net != nil {
			r.ns = c.net.ns(i)
		}
		if err := os.MkdirAll(r.DataDir, 0o700); err != nil {
			return nil, err
		}
		r.args = append(managerArgs(p, peers, r.DataDir, tokens), opts.ExtraArgs...)
		c.Replicas = append(c.Replicas, r)
	}
	for _, r := range c.Replicas {
		if err := r.Start(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type peer struct{ id, raft, http string }

// managerArgs is the `nerve manager` command line of one replica of a new
// cluster. Every replica is given --bootstrap with the same peers: the
// manager bootstraps only a replica with no state, so a restart with the
// same line joins the cluster it already belongs to.
func managerArgs(self peer, peers []peer, dir, tokens string) []string {
	args := []string{"manager",
		"--id=" + self.id,
		"--dir=" + dir,
		"--bind=" + self.raft,
		"--http=" + self.http,
		"--tokens-file=" + tokens,
		"--bootstrap",
	}
	for _, p := range peers {
		args = append(args, "--peer="+p.id+"="+p.raft+","+p.http)
	}
	return args
}

// freePorts finds n distinct free TCP ports on 127.0.0.1. Another process
// could take one before the replica binds it; on a test machine that is rare.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// URL is the replica's API base URL.
func (r *Replica) URL() string { return "http://" + r.HTTPAddr }

// Endpoints are the API base URLs of every replica.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, r := range c.Replicas {
		out = append(out, r.URL())
	}
	return out
}

// Start starts the replica's process, appending to its log. It is an error
// to start a running replica.
func (r *Replica) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("replica %s: already running", r.ID)
	}
	logf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n=== %s start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(r.args, " "))
	name, args := r.binary, r.args
	if r.ns != "" {
		// ip netns exec execs the command: the pid stays the replica's.
		name, args = "ip", append([]string{"netns", "exec", r.ns, r.binary}, r.args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("replica %s: %w", r.ID, err)
	}
	exited := make(chan struct{})
	r.cmd, r.exited, r.paused = cmd, exited, false
	go func() {
		// Ends when the process exits, which Kill and Close make sure of.
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		r.mu.Lock()
		if r.cmd == cmd {
			r.cmd = nil
		}
		r.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Running says whether the process is up (paused or not).
func (r *Replica) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// Kill sends SIGKILL and waits for the process to be gone. A replica not
// running is left as it is.
func (r *Replica) Kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Stop sends SIGSTOP: the replica keeps its sockets but answers nothing.
func (r *Replica) Stop() error { return r.signal(syscall.SIGSTOP, true) }

// Cont sends SIGCONT to a stopped replica.
func (r *Replica) Cont() error { return r.signal(syscall.SIGCONT, false) }

func (r *Replica) signal(sig syscall.Signal, paused bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return fmt.Errorf("replica %s: not running", r.ID)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("replica %s: %v: %w", r.ID, sig, err)
	}
	r.paused = paused
	return nil
}

// Paused says whether the replica was sent SIGSTOP and no SIGCONT since.
func (r *Replica) Paused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused && r.cmd != nil
}

// Client is a client of this replica alone that tries once, for status
// and history reads that must come from this replica.
func (r *Replica) Client(timeout time.Duration) *client.Client {
	c, err := client.New([]string{r.URL()}, r.token, client.WithRetry(1, 0, 0), client.WithRequestTimeout(timeout))
	if err != nil {
		panic(err) // the URL is ours
	}
	return c
}

// Status asks this replica for its view.
func (r *Replica) Status(ctx context.Context) (client.Status, error) {
	return r.Client(time.Second).Status(ctx)
}

// Leader returns the replica that says it is the leader and whose word at
// least one other replica confirms (its Leader names it), or nil.
func (c *Cluster) Leader(ctx context.Context) *Replica {
	type view struct {
		r  *Replica
		st client.Status
	}
	views := make([]view, len(c.Replicas))
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		wg.Go(func() {
			if r.Paused() || !r.Running() {
				return
			}
			st, err := r.Status(ctx)
			if err == nil {
				views[i] = view{r, st}
			}
		})
	}
	wg.Wait()
	for _, v := range views {
		if v.r == nil || v.st.State != "Leader" {
			continue
		}
		for _, w := range views {
			if w.r != nil && w.r != v.r && (w.st.Leader == v.r.ID || w.st.Leader == v.r.RaftAddr) {
				return v.r
			}
		}
	}
	return nil
}

// WaitLeader waits until Leader finds one.
func (c *Cluster) WaitLeader(ctx context.Context) (*Replica, error) {
	for {
		if l := c.Leader(ctx); l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Isolate cuts replica i off the bridge: neither its peers nor any client
// reach it. Netns only.
func (c *Cluster) Isolate(i int) error {
	if c.net == nil {
		return errors.New("isolate: needs Netns")
	}
	return c.net.isolate(i, true)
}

// CutFromPeers drops every packet between replica i and the other
// replicas, both ways; clients still reach all of them. Netns only.
func (c *Cluster) CutFromPeers(i int) error {
	if c.net == nil {
		return errors.New("cut: needs Netns")
	}
	return c.net.cut(i, true)
}

// Heal undoes every Isolate and CutFromPeers, continues every paused
// replica and restarts every replica that is not running.
func (c *Cluster) Heal() error {
	var errs []error
	if c.net != nil {
		for i := range c.Replicas {
			errs = append(errs, c.net.isolate(i, false), c.net.cut(i, false))
		}
	}
	for _, r := range c.Replicas {
		if r.Paused() {
			errs = append(errs, r.Cont())
		}
		if !r.Running() {
			errs = append(errs, r.Start())
		}
	}
	return errors.Join(errs...)
}

// Close kills every replica and removes the network. Safe to call twice.
func (c *Cluster) Close() error {
	for _, r := range c.Replicas {
		r.mu.Lock()
		cmd := r.cmd
		r.mu.Unlock()
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGCONT)
		}
		r.Kill()
	}
	if c.net != nil {
		return c.net.close()
	}
	return nil
}

// Tail returns the last n lines of the replica's log.
func (r *Replica) Tail(n int) string {
	b, err := os.ReadFile(r.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
