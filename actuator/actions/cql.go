package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// DefaultCQLTimeout bounds a liveness check when CQLLiveness.Timeout is 0.
const DefaultCQLTimeout = 5 * time.Second

// CQLLiveness checks that the database answers CQL: it connects to Hosts
// only (no ring discovery: it is the local node that is checked) and reads
// its release version from system.local. It changes nothing.
type CQLLiveness struct {
	Hosts   []string      // "host" or "host:port"; the port defaults to 9042
	Timeout time.Duration // for the whole check; 0 means DefaultCQLTimeout
	// Authenticator is for clusters with authentication on, e.g.
	// gocql.PasswordAuthenticator; nil means none.
	Authenticator gocql.Authenticator
}

// Check returns the release version the node reports, or an error naming
// the hosts.
//
// The driver's session setup takes no context, so it runs in a goroutine
// bounded by its own connect timeout (the check's timeout); if ctx ends
// first, Check returns at once and that goroutine closes the session when
// setup ends.
func (c CQLLiveness) Check(ctx context.Context) (string, error) {
	if len(c.Hosts) == 0 {
		return "", errors.New("cql liveness: no hosts")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCQLTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("cql liveness %s: %w", strings.Join(c.Hosts, ","), err)
	}

	cluster := gocql.NewCluster(c.Hosts...)
	cluster.Timeout = timeout
	cluster.ConnectTimeout = timeout
	cluster.NumConns = 1
	cluster.Consistency = gocql.LocalOne
	cluster.DisableInitialHostLookup = true
	cluster.Metadata.CacheMode = gocql.Disabled // no schema fetch on connect
	// One attempt per connection (the driver's "retries" count attempts; 0
	// would mean none): the ladder, not the driver, decides when to look again.
	cluster.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: 100 * time.Millisecond}
	cluster.Authenticator = c.Authenticator

	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := cluster.CreateSession()
		done <- result{s, err}
	}()
	var session *gocql.Session
	select {
	case r := <-done:
		if r.err != nil {
			return fail(r.err)
		}
		session = r.s
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return fail(fmt.Errorf("connect: %w", ctx.Err()))
	}
	defer session.Close()

	var version string
	if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
		return fail(err)
	}
	return version, nil
}
