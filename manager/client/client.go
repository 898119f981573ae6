package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is where a manager replica serves its API unless told
// otherwise: the agent's port, 19648, plus one.
const DefaultEndpoint = "http://localhost:19649"

// maxAnswer bounds how much of an answer is read: a history page or a list
// of reports is far below it, a runaway body is not.
const maxAnswer = 32 << 20

// Client is the manager's API over HTTP, spread over the replicas it is
// given. It is safe for concurrent use.
type Client struct {
	endpoints []string // base URLs, without a trailing slash
	token     string
	hc        *http.Client
	tls       *tls.Config

	attempts       int           // per call, over all replicas
	backoff        time.Duration // the first wait between attempts
	maxBackoff     time.Duration
	requestTimeout time.Duration // per attempt

	mu      sync.Mutex
	current string // the replica that last answered or was named leader; guarded by mu
}

// Option changes a Client as New builds it.
type Option func(*Client)

// WithTLS sets the TLS configuration for https endpoints (a CA pool, a
// client certificate). Endpoints given without a scheme then default to
// https.
func WithTLS(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// WithHTTPClient uses hc for every request instead of a client of its own;
// WithTLS is then ignored.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetry sets how many attempts one call makes at most, over all
// replicas, and the backoff between them: first wait, doubling up to max.
func WithRetry(attempts int, first, max time.Duration) Option {
	return func(c *Client) { c.attempts, c.backoff, c.maxBackoff = attempts, first, max }
}

// WithRequestTimeout bounds each attempt (default 10s); a long poll of the
// history gets its wait on top.
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.requestTimeout = d } }

// New returns a client of the replicas at endpoints ("http://host:19649",
// or "host:19649", taken as https with WithTLS and http without), sending
// token as a bearer token when it is not "".
func New(endpoints []string, token string, opts ...Option) (*Client, error) {
	c := &Client{
		token:          token,
		backoff:        100 * time.Millisecond,
		maxBackoff:     2 * time.Second,
		requestTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("manager client: no endpoints")
	}
	for _, e := range endpoints {
		u, err := normalize(e, c.tls != nil)
		if err != nil {
			return nil, fmt.Errorf("manager client: %w", err)
		}
		c.endpoints = append(c.endpoints, u)
	}
	if c.attempts < 1 {
		// Two rounds of every replica, and enough waits (0.1+0.2+...+1.6 s)
		// to see out a Raft election.
		c.attempts = max(6, 2*len(c.endpoints))
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.tls
		c.hc = &http.Client{Transport: tr}
	}
	c.current = c.endpoints[0]
	return c, nil
}

func normalize(endpoint string, tlsDefault bool) (string, error) {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		scheme := "http://"
		if tlsDefault {
			scheme = "https://"
		}
		e = scheme + e
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("endpoint %q: want a URL like %s", endpoint, DefaultEndpoint)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// TLSConfig builds the TLS configuration for https endpoints from PEM
// files: caFile is trusted besides the system's CAs, and certFile with
// keyFile is the client certificate a replica asks for under mTLS. It
// returns nil when all three are "".
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("manager CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("manager CA: %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("manager client certificate: need both the certificate and the key file, got %q and %q", certFile, keyFile)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("manager client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ReadTokenFile reads a bearer token from a file, without surrounding
// white space; an empty file is an error.
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("manager token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("manager token: %s is empty", path)
	}
	return tok, nil
}

// retry says when a call may be sent again.
type retry int

const (
	// once: sent again only when it certainly was not applied (it never
	// left, or a replica answered not_leader).
	once retry = iota
	// safe: also sent again when it may have been applied, because a
	// repeat cannot change the outcome.
	safe
)

// call is one request to the API.
type call struct {
	method string
	path   string
	query  url.Values
	in     any // the JSON body; nil for none
	out    any // decoded from a 2xx answer; nil to discard it
	retry  retry
	extra  time.Duration // added to the attempt timeout (a long poll's wait)
}

// decodeError is a 2xx answer that is not what the route promises: a
// mismatch of versions, never cured by asking again.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// do sends r, to the replica that answered last first, and on to the
// others or to a named leader as the package documentation says.
func (c *Client) do(ctx context.Context, r call) error {
	var body []byte
	if r.in != nil {
		var err error
		if body, err = json.Marshal(r.in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	c.mu.Lock()
	base := c.current
	c.mu.Unlock()
	visited := map[string]bool{}
	delay := c.backoff
	wait := false
	var last error
	for attempt := 0; attempt < c.attempts; attempt++ {
		if wait {
			if err := sleep(ctx, delay); err != nil {
				return fmt.Errorf("%w (last error: %w)", err, last)
			}
			delay = min(2*delay, c.maxBackoff)
		}
		visited[base] = true
		err := c.send(ctx, base, r, body)
		if err == nil {
			c.mu.Lock()
			c.current = base
			c.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return err // wraps the context's error
		}
		last = err
		var api *APIError
		var dec *decodeError
		switch {
		case errors.As(err, &api) && api.notLeader():
			if api.Leader != "" {
				base = leaderURL(base, api.Leader, c.endpoints)
				// A fresh hint is followed at once; one seen before means
				// the replicas disagree, an election is on: wait.
				wait = visited[base]
			} else {
				base, wait = c.next(base), true
			}
		case errors.As(err, &api) && api.Status < 500, errors.As(err, &dec):
			return err // final
		case notSent(err), r.retry == safe:
			base, wait = c.next(base), true
		default:
			// A 5xx or a lost answer: the request may have been applied.
			return fmt.Errorf("%w (not retried: the request may have been applied)", err)
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", c.attempts, last)
}

// send makes one attempt at base.
func (c *Client) send(ctx context.Context, base string, r call, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout+r.extra)
	defer cancel()
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return &decodeError{fmt.Errorf("manager %s: %w", base, err)}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("manager %s: %w", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("manager %s: read answer: %w", base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(base, resp.StatusCode, data)
	}
	if r.out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, r.out); err != nil {
		return &decodeError{fmt.Errorf("manager %s: decode answer to %s %s: %w", base, r.method, r.path, err)}
	}
	return nil
}

func apiError(base string, status int, data []byte) *APIError {
	e := &APIError{Endpoint: base, Status: status}
	var body struct {
		Error  string `json:"error"`
		Code   string `json:"code"`
		Leader string `json:"leader"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Message, e.Code, e.Leader = body.Error, body.Code, body.Leader
	} else {
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
	}
	return e
}

// next is the configured replica after base; after a leader's address
// that is not among them, the first.
func (c *Client) next(base string) string {
	for i, e := range c.endpoints {
		if e == base {
			return c.endpoints[(i+1)%len(c.endpoints)]
		}
	}
	return c.endpoints[0]
}

// leaderURL turns a not_leader hint (host:port, or a URL) into a base URL:
// the configured endpoint with that host when there is one, else the hint
// with the scheme of the replica that gave it.
func leaderURL(from, hint string, endpoints []string) string {
	if strings.Contains(hint, "://") {
		return strings.TrimRight(hint, "/")
	}
	for _, e := range endpoints {
		if u, err := url.Parse(e); err == nil && u.Host == hint {
			return e
		}
	}
	scheme := "http"
	if u, err := url.Parse(from); err == nil {
		scheme = u.Scheme
	}
	return scheme + "://" + hint
}

// notSent says whether err means the request never reached a replica: the
// name did not resolve or the connection was not made.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// sleep waits about d (a quarter either way, so that agents refused
// together do not come back together) or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		d = d*3/4 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
