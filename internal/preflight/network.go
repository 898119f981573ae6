package preflight

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// NetworkFigures is what the connect probe of one address measured.
// Connect time is from the SYN until the handshake completes, after the
// name was resolved (once, not timed).
type NetworkFigures struct {
	Address           string  `json:"address"` // the resolved ip:port connected to
	Attempts          int     `json:"attempts"`
	Failed            int     `json:"failed"`
	ConnectP50Seconds float64 `json:"connect_p50_seconds"`
	ConnectP99Seconds float64 `json:"connect_p99_seconds"`
	ConnectMaxSeconds float64 `json:"connect_max_seconds"`
	// HealthzStatus and HealthzSeconds are a manager's GET /healthz: its
	// status code (0 without an answer) and round trip.
	HealthzStatus  int     `json:"healthz_status,omitempty"`
	HealthzSeconds float64 `json:"healthz_seconds,omitempty"`
}

// checkPeer probes a host:port.
func checkPeer(ctx context.Context, addr string, spec NetworkSpec) Check {
	c := Check{Kind: "peer", Target: addr, Goal: "connect p99 ≤ " + spec.MaxConnectP99.String()}
	f, ok := connectCheck(ctx, &c, addr, spec)
	c.Network = f
	if ok {
		c.Pass = true
	}
	return c
}

// checkManager probes a manager endpoint's host and port and asks its
// GET /healthz, which needs no token.
func checkManager(ctx context.Context, endpoint string, spec NetworkSpec, tc *tls.Config) Check {
	c := Check{Kind: "manager", Target: endpoint, Goal: "connect p99 ≤ " + spec.MaxConnectP99.String() + ", /healthz 200"}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		c.fail("not a URL like http://m1:19649")
		return c
	}
	hostport := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		hostport = net.JoinHostPort(u.Hostname(), port)
	}
	f, ok := connectCheck(ctx, &c, hostport, spec)
	c.Network = f
	if !ok {
		return c
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: spec.Timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/healthz", nil)
	if err != nil {
		c.fail("GET /healthz: %v", err)
		return c
	}
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		c.fail("GET /healthz: %v", innermost(err))
		return c
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	f.HealthzSeconds = time.Since(t0).Seconds()
	f.HealthzStatus = resp.StatusCode
	c.Figure += fmt.Sprintf(", /healthz %d", resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		c.fail("GET /healthz answered %s", resp.Status)
		return c
	}
	c.Pass = true
	return c
}

// connectCheck connects spec.Attempts times to hostport, sets c's figure,
// and fails c (returning false) when a connect failed or the p99 is above
// the goal.
func connectCheck(ctx context.Context, c *Check, hostport string, spec NetworkSpec) (*NetworkFigures, bool) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		c.fail("%v", err)
		return nil, false
	}
	rctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	addrs, err := net.DefaultResolver.LookupHost(rctx, host)
	cancel()
	if err != nil {
		c.fail("resolve %s: %v", host, innermost(err))
		return nil, false
	}
	f := &NetworkFigures{Address: net.JoinHostPort(addrs[0], port), Attempts: spec.Attempts}
	var lats []time.Duration
	var last error
	d := net.Dialer{Timeout: spec.Timeout}
	for range spec.Attempts {
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp", f.Address)
		lat := time.Since(t0)
		if ctx.Err() != nil {
			c.fail("interrupted: %v", context.Cause(ctx))
			return f, false
		}
		if err != nil {
			f.Failed++
			last = err
			continue
		}
		conn.Close()
		lats = append(lats, lat)
	}
	l := Summarise(lats)
	f.ConnectP50Seconds, f.ConnectP99Seconds, f.ConnectMaxSeconds = l.P50.Seconds(), l.P99.Seconds(), l.Max.Seconds()
	ok := len(lats)
	if f.Failed > 0 {
		c.Figure = fmt.Sprintf("%d of %d connects failed", f.Failed, f.Attempts)
		to := ""
		if f.Address != hostport {
			to = " to " + f.Address // what the name resolved to
		}
		c.fail("%d of %d connects%s failed: %v", f.Failed, f.Attempts, to, innermost(last))
		return f, false
	}
	c.Figure = fmt.Sprintf("connect p99 %s (%d connects)", formatDuration(l.P99), ok)
	if l.P99 > spec.MaxConnectP99 {
		c.fail("connect p99 %s above %v", formatDuration(l.P99), spec.MaxConnectP99)
		return f, false
	}
	return f, true
}

// innermost strips the wrapping of network errors ("dial tcp ...:
// connect: ") down to what went wrong ("connection refused"): the reason
// names the address already.
func innermost(err error) error {
	for {
		var op *net.OpError
		var sc *os.SyscallError
		var ue *url.Error
		var dns *net.DNSError
		switch {
		case errors.As(err, &dns):
			return errors.New(dns.Err)
		case errors.As(err, &ue) && ue.Err != err:
			err = ue.Err
		case errors.As(err, &op) && op.Err != err:
			err = op.Err
		case errors.As(err, &sc) && sc.Err != err:
			err = sc.Err
		default:
			return err
		}
	}
}
