package main

// The commands that run a manager replica or talk to one: their flags, and
// the wiring from the flags to manager/server and manager/client. What they
// print is written by manager/client (Write*, EventText) or is the JSON of
// the manager's types.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nervehq/nerve/internal/buildinfo"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
	"github.com/nervehq/nerve/manager/server"
)

// callTimeout bounds one command's calls to the manager (not --follow).
const callTimeout = 30 * time.Second

// managerCLI holds the flags of the manager commands, filled by kingpin.
type managerCLI struct {
	endpoints                   *[]string
	tokenFile, caFile           *string
	certFile, keyFile           *string
	lockJSON, historyJSON       *bool
	goalsJSON, managerJSON      *bool
	cluster, rack, node, op     *string
	requestID                   *string
	lease                       *time.Duration
	grantID                     *string
	token                       *uint64
	reason, by                  *string
	listCluster                 *string
	from                        *uint64
	limit                       *int
	follow                      *bool
	where                       manager.Where
	level, key, file            *string
	deleteGoals                 *bool
	joinID, joinRaft, joinHTTP  *string
	removeID                    *string
	replica                     server.Config
	replicaPeers                *[]string
	certs                       server.TLS
	replicaApply, replicaExpire *time.Duration
}

// addManagerCommands registers the commands on app.
func addManagerCommands(app *kingpin.Application) *managerCLI {
	m := &managerCLI{}
	host, _ := os.Hostname()
	m.endpoints = app.Flag("manager.endpoint", "A manager replica's API URL; repeat for each replica.").
		Default(client.DefaultEndpoint).Strings()
	m.tokenFile = app.Flag("manager.token-file", "File holding the bearer token for the manager.").PlaceHolder("PATH").String()
	m.caFile = app.Flag("manager.ca-file", "PEM CAs to trust for https replicas, besides the system's.").PlaceHolder("PATH").String()
	m.certFile = app.Flag("manager.cert-file", "Client certificate for replicas that require one (mTLS).").PlaceHolder("PATH").String()
	m.keyFile = app.Flag("manager.key-file", "Key of --manager.cert-file.").PlaceHolder("PATH").String()

	lock := app.Command("lock", "Take, renew, give back and list rack locks at the manager.")
	m.lockJSON = lock.Flag("json", "Print JSON.").Bool()
	acq := lock.Command("acquire", "Ask for the rack lock by hand (e.g. before maintenance).")
	m.cluster = acq.Flag("cluster", "The node's cluster.").Required().String()
	m.rack = acq.Flag("rack", "The node's rack.").Required().String()
	m.node = acq.Flag("node", "The node.").Default(host).String()
	m.op = acq.Flag("operation", "What the lock is for, for the history.").Default("manual").String()
	m.requestID = acq.Flag("request-id", "Asking again with the same ID returns the same answer (the same grant, or the same refusal); default a new ID.").String()
	m.lease = acq.Flag("lease", "How long the grant lives without a renewal.").Default("60s").Duration()
	renew := lock.Command("renew", "Extend a grant's lease.")
	m.grantID = renew.Flag("grant-id", "The grant.").Required().String()
	m.token = renew.Flag("token", "The grant's fencing token.").Required().Uint64()
	renew.Flag("lease", "The new lease.").Default("60s").DurationVar(m.lease)
	rel := lock.Command("release", "Give a grant back.")
	rel.Flag("grant-id", "The grant.").Required().StringVar(m.grantID)
	rel.Flag("token", "The grant's fencing token.").Required().Uint64Var(m.token)
	list := lock.Command("list", "List the grants.")
	m.listCluster = list.Flag("cluster", "Only this cluster's grants.").String()
	force := lock.Command("force-release", "Free a grant whose holder cannot (a dead node); recorded with the reason.")
	force.Flag("grant-id", "The grant.").Required().StringVar(m.grantID)
	m.reason = force.Flag("reason", "Why, for the history.").Required().String()
	m.by = force.Flag("by", "Who, for the history.").Default(os.Getenv("USER") + "@" + host).String()

	hist := app.Command("history", "Print the manager's history of grants, goals and decisions.")
	m.historyJSON = hist.Flag("json", "Print one JSON event per line.").Bool()
	m.from = hist.Flag("from", "The first index.").Default("0").Uint64()
	m.limit = intFlag(hist.Flag("limit", "At most this many events (without --follow).").Default("100"), "limit")
	m.follow = hist.Flag("follow", "Keep printing new events until interrupted.").Bool()

	goals := app.Command("goals", "Read and store goals documents at the manager.")
	m.goalsJSON = goals.Flag("json", "Print JSON.").Bool()
	get := goals.Command("get", "Print the merged goals of a place in the fleet, and each level's document.")
	for _, f := range []struct {
		name string
		dst  *string
	}{{"cluster", &m.where.Cluster}, {"environment", &m.where.Environment}, {"region", &m.where.Region},
		{"zone", &m.where.Zone}, {"rack", &m.where.Rack}, {"node", &m.where.Node}} {
		get.Flag(f.name, "The "+f.name+" to merge the goals of.").StringVar(f.dst)
	}
	set := goals.Command("set", "Store a goals document (YAML) at one level.")
	levels := make([]string, len(manager.Levels))
	for i, l := range manager.Levels {
		levels[i] = string(l)
	}
	m.level = set.Flag("level", "The level: "+strings.Join(levels, ", ")+".").Required().Enum(levels...)
	m.key = set.Flag("key", "The cluster, environment, ... or node name the document is for.").Required().String()
	m.file = set.Flag("file", `The document; "-" reads standard input.`).PlaceHolder("PATH").String()
	m.deleteGoals = set.Flag("delete", "Delete the level's document instead.").Bool()

	mgr := app.Command("manager", "Run a manager replica (the default), or ask the replicas about themselves.")
	m.managerJSON = mgr.Flag("json", "Print JSON.").Bool()
	run := mgr.Command("run", "Run a manager replica until SIGINT or SIGTERM.").Default()
	run.Flag("id", "The replica's raft ID, unique in the cluster.").Required().StringVar(&m.replica.ID)
	run.Flag("dir", "Directory of the replica's state.").Required().StringVar(&m.replica.Dir)
	run.Flag("bind", "Raft address to listen on (host:port).").Required().StringVar(&m.replica.BindAddr)
	run.Flag("advertise", "Raft address the peers dial; default --bind.").StringVar(&m.replica.AdvertiseAddr)
	run.Flag("http", "API address to listen on (host:port); peers forward writes to it.").Default("localhost:19649").StringVar(&m.replica.HTTPAddr)
	run.Flag("tokens-file", "Bearer tokens the API accepts, one per line.").Required().StringVar(&m.replica.TokensFile)
	run.Flag("bootstrap", "Bootstrap the cluster from the peers when this replica has no state.").BoolVar(&m.replica.Bootstrap)
	m.replicaPeers = run.Flag("peer", "A replica of the initial cluster, this one included: ID=RAFT_ADDR,HTTP_ADDR. Repeat for each.").Strings()
	run.Flag("tls.cert-file", "Serve the API and raft with TLS with this certificate.").StringVar(&m.certs.CertFile)
	run.Flag("tls.key-file", "Key of --tls.cert-file.").StringVar(&m.certs.KeyFile)
	run.Flag("tls.client-ca-file", "Require client certificates signed by this CA (mTLS).").StringVar(&m.certs.ClientCAFile)
	m.replicaApply = run.Flag("apply-timeout", "Bound of one raft apply.").Default("5s").Duration()
	m.replicaExpire = run.Flag("expire-interval", "How often the leader marks lapsed leases suspect.").Default("1s").Duration()
	mgr.Command("status", "Print a replica's view: its state, the leader, the peers.")
	join := mgr.Command("join", "Add a replica to the cluster.")
	m.joinID = join.Flag("id", "The new replica's raft ID.").Required().String()
	m.joinRaft = join.Flag("address", "Its raft address (host:port).").Required().String()
	m.joinHTTP = join.Flag("http", "Its API address (host:port).").Required().String()
	remove := mgr.Command("remove", "Take a replica out of the cluster.")
	m.removeID = remove.Flag("id", "The replica's raft ID.").Required().String()
	return m
}

// handles says whether command is one of the manager commands.
func (m *managerCLI) handles(command string) bool {
	first, _, _ := strings.Cut(command, " ")
	return first == "lock" || first == "history" || first == "goals" || first == "manager"
}

// run runs command and returns the exit code.
func (m *managerCLI) run(command string, stdout, stderr io.Writer, inv invocation) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if command == "manager run" {
		// After the first signal, a second one kills a stop that hangs.
		context.AfterFunc(ctx, stop)
		return m.runReplica(ctx, stderr, inv)
	}
	c, err := m.client()
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	if command == "history" && *m.follow {
		err = c.Follow(ctx, *m.from, func(ev manager.Event) error { return m.printEvent(stdout, ev) })
	} else {
		tctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		err = m.call(tctx, c, command, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		if _, usage := err.(usageError); usage {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

// usageError is a wrong use of flags found after parsing.
type usageError string

func (e usageError) Error() string { return string(e) }

func (m *managerCLI) client() (*client.Client, error) {
	var token string
	if *m.tokenFile != "" {
		var err error
		if token, err = client.ReadTokenFile(*m.tokenFile); err != nil {
			return nil, err
		}
	}
	var opts []client.Option
	tc, err := client.TLSConfig(*m.caFile, *m.certFile, *m.keyFile)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, client.WithTLS(tc))
	}
	return client.New(*m.endpoints, token, opts...)
}

// call makes the one call command stands for and prints its answer.
func (m *managerCLI) call(ctx context.Context, c *client.Client, command string, w io.Writer) error {
	switch command {
	case "lock acquire":
		id := *m.requestID
		if id == "" {
			id = newRequestID()
		}
		g, err := c.Acquire(ctx, manager.Acquire{Cluster: *m.cluster, Rack: *m.rack, Node: *m.node,
			Operation: *m.op, RequestID: id, Lease: *m.lease})
		return m.printGrant(w, g, err)
	case "lock renew":
		g, err := c.Renew(ctx, manager.Renew{GrantID: *m.grantID, Token: *m.token, Lease: *m.lease})
		return m.printGrant(w, g, err)
	case "lock release":
		g, err := c.Release(ctx, manager.Release{GrantID: *m.grantID, Token: *m.token})
		return m.printGrant(w, g, err)
	case "lock force-release":
		g, err := c.ForceRelease(ctx, manager.ForceRelease{GrantID: *m.grantID, Reason: *m.reason, By: *m.by})
		return m.printGrant(w, g, err)
	case "lock list":
		gs, err := c.Locks(ctx, *m.listCluster)
		if err != nil {
			return err
		}
		if *m.lockJSON {
			return printJSON(w, gs)
		}
		return client.WriteGrants(w, gs)
	case "history":
		evs, err := c.History(ctx, *m.from, *m.limit, 0)
		if err != nil {
			return err
		}
		if len(evs) == 0 && !*m.historyJSON {
			_, err := fmt.Fprintf(w, "no events from index %d\n", *m.from)
			return err
		}
		for _, ev := range evs {
			if err := m.printEvent(w, ev); err != nil {
				return err
			}
		}
		return nil
	case "goals get":
		g, err := c.Goals(ctx, m.where)
		if err != nil {
			return err
		}
		if *m.goalsJSON {
			return printJSON(w, g)
		}
		return client.WriteGoals(w, g)
	case "goals set":
		doc, err := m.goalsDocument()
		if err != nil {
			return err
		}
		s := manager.SetGoals{Level: manager.Level(*m.level), Key: *m.key, Document: doc}
		if err := c.SetGoals(ctx, s); err != nil {
			return err
		}
		if *m.goalsJSON {
			return printJSON(w, s)
		}
		what := "stored"
		if doc == "" {
			what = "deleted"
		}
		_, err = fmt.Fprintf(w, "goals of %s %q %s\n", s.Level, s.Key, what)
		return err
	case "manager status":
		s, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if *m.managerJSON {
			return printJSON(w, s)
		}
		return client.WriteStatus(w, s)
	case "manager join":
		p := client.Peer{ID: *m.joinID, Address: *m.joinRaft, HTTP: *m.joinHTTP}
		if err := c.Join(ctx, p); err != nil {
			return err
		}
		return m.printDone(w, *m.managerJSON, p, fmt.Sprintf("replica %s (raft %s, api %s) joined", p.ID, p.Address, p.HTTP))
	case "manager remove":
		if err := c.Remove(ctx, *m.removeID); err != nil {
			return err
		}
		return m.printDone(w, *m.managerJSON, map[string]string{"id": *m.removeID}, "replica "+*m.removeID+" removed")
	}
	return usageError(fmt.Sprintf("unknown command %q", command))
}

func (m *managerCLI) goalsDocument() (string, error) {
	switch {
	case *m.deleteGoals && *m.file != "":
		return "", usageError("goals set: give --file or --delete, not both")
	case *m.deleteGoals:
		return "", nil
	case *m.file == "":
		return "", usageError("goals set: --file is required (or --delete)")
	case *m.file == "-":
		data, err := io.ReadAll(os.Stdin)
		return string(data), err
	}
	data, err := os.ReadFile(*m.file)
	if err == nil && strings.TrimSpace(string(data)) == "" {
		return "", usageError(fmt.Sprintf("goals set: %s is empty; use --delete to delete a document", *m.file))
	}
	return string(data), err
}

func (m *managerCLI) printGrant(w io.Writer, g manager.Grant, err error) error {
	if err != nil {
		return err
	}
	if *m.lockJSON {
		return printJSON(w, g)
	}
	return client.WriteGrant(w, g)
}

func (m *managerCLI) printEvent(w io.Writer, ev manager.Event) error {
	if *m.historyJSON {
		return json.NewEncoder(w).Encode(ev) // one line per event
	}
	_, err := fmt.Fprintln(w, client.EventText(ev))
	return err
}

func (m *managerCLI) printDone(w io.Writer, asJSON bool, v any, text string) error {
	if asJSON {
		return printJSON(w, v)
	}
	_, err := fmt.Fprintln(w, text)
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newRequestID is a fresh ID for a lock taken by hand.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// runReplica runs a manager replica until ctx ends.
func (m *managerCLI) runReplica(ctx context.Context, stderr io.Writer, inv invocation) int {
	cfg := m.replica
	cfg.TLS = m.certs
	cfg.ApplyTimeout, cfg.ExpireInterval = *m.replicaApply, *m.replicaExpire
	for _, p := range *m.replicaPeers {
		peer, err := parsePeer(p)
		if err != nil {
			fmt.Fprintf(stderr, "nerve: --peer: %v\n", err)
			return exitUsage
		}
		cfg.Peers = append(cfg.Peers, peer)
	}
	logger, err := newLogger(stderr, inv.logFormat, inv.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "nerve: %v\n", err)
		return exitUsage
	}
	cfg.Logger = logger
	// The replica's own registry: its API metrics, and what every exporter
	// serves about itself.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector(version, revision))
	cfg.Registry = reg
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "nerve: manager: %v\n", err)
		return exitUsage
	}
	logger.Info("starting nerve manager", "version", version, "id", cfg.ID, "raft", cfg.BindAddr, "http", cfg.HTTPAddr)
	if err := server.Run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "nerve: manager: %v\n", err)
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}

// parsePeer parses ID=RAFT_ADDR,HTTP_ADDR.
func parsePeer(s string) (server.Peer, error) {
	id, addrs, ok1 := strings.Cut(s, "=")
	raft, http, ok2 := strings.Cut(addrs, ",")
	if !ok1 || !ok2 || id == "" || raft == "" || http == "" {
		return server.Peer{}, fmt.Errorf("want ID=RAFT_ADDR,HTTP_ADDR like m1=10.0.0.1:7946,10.0.0.1:19649, got %q", s)
	}
	return server.Peer{ID: id, Address: raft, HTTP: http}, nil
}
