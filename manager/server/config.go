package server

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Peer is one replica of the initial cluster.
type Peer struct {
	ID      string `json:"id"`      // raft server ID
	Address string `json:"address"` // raft address, host:port
	HTTP    string `json:"http"`    // HTTP API address, host:port
}

// TLS names the files for the HTTP API and the raft transport. With CertFile
// and KeyFile set both listen with TLS; with ClientCAFile set too, both
// require a client certificate signed by that CA (mTLS), and the replica
// trusts that CA for the servers it dials (raft peers and forwarded writes):
// one fleet CA signs every replica and every agent.
type TLS struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

func (t TLS) enabled() bool { return t.CertFile != "" }

// Config is one replica's configuration.
type Config struct {
	// ID is the raft server ID, unique in the cluster.
	ID string
	// Dir holds the state: raft.db (log and stable store) and snapshots/.
	Dir string
	// BindAddr is where the raft transport listens (host:port).
	BindAddr string
	// AdvertiseAddr is the raft address peers dial; default BindAddr. It must
	// be routable: 0.0.0.0 and :: are refused.
	AdvertiseAddr string
	// HTTPAddr is where the HTTP API listens (host:port). Peers forward to
	// the http of this replica's Peers entry, or to HTTPAddr when there is
	// none; so with peers, one of the two must be an address they can dial.
	HTTPAddr string
	// Bootstrap makes the replica bootstrap the cluster from Peers when it
	// has no state yet. Every replica of a new cluster may set it with the
	// same Peers; a replica with state never bootstraps again.
	Bootstrap bool
	// Peers is the initial cluster (including this replica) for Bootstrap,
	// and the map of raft IDs to HTTP addresses used to forward writes.
	Peers []Peer
	// TokensFile holds the bearer tokens, one per line; blank lines and
	// lines starting with # are skipped. Required unless Tokens is set.
	TokensFile string
	// Tokens are bearer tokens given directly (in-process use and tests).
	Tokens []string
	// TLS is optional.
	TLS TLS
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the replica's metrics and is served at /metrics;
	// New makes one when nil.
	Registry *prometheus.Registry

	// ApplyTimeout bounds one raft.Apply (default 5s).
	ApplyTimeout time.Duration
	// ExpireInterval is how often the leader proposes OpExpire (default 1s).
	ExpireInterval time.Duration
	// SnapshotRetain is how many snapshots are kept on disk (default 3).
	SnapshotRetain int
	// Tune, when set, adjusts the raft configuration before raft starts
	// (tests shorten the timeouts with it).
	Tune func(*raft.Config)
}

const (
	defaultApplyTimeout   = 5 * time.Second
	defaultExpireInterval = time.Second
	defaultSnapshotRetain = 3
)

func (c *Config) setDefaults() {
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = defaultApplyTimeout
	}
	if c.ExpireInterval <= 0 {
		c.ExpireInterval = defaultExpireInterval
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = defaultSnapshotRetain
	}
}

// Validate checks the configuration of a replica with a TCP transport and
// on-disk state. Its errors name the settings involved.
func (c Config) Validate() error {
	return c.validate(true)
}

func (c Config) validate(tcp bool) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.ID == "" {
		add("id: required")
	}
	if tcp {
		if c.Dir == "" {
			add("dir: required (the raft log and snapshots live there)")
		}
		if c.BindAddr == "" {
			add("bind_addr: required")
		} else if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
			add("bind_addr %q: %v", c.BindAddr, err)
		}
		adv := c.AdvertiseAddr
		if adv == "" {
			adv = c.BindAddr
		}
		if adv != "" {
			if err := routable(adv); err != nil {
				if c.AdvertiseAddr == "" {
					add("advertise_addr is empty and bind_addr %q %v: set advertise_addr to an address peers can dial", c.BindAddr, err)
				} else {
					add("advertise_addr %q %v (bind_addr is %q): set an address peers can dial", c.AdvertiseAddr, err, c.BindAddr)
				}
			}
		}
	}
	if c.HTTPAddr == "" {
		add("http_addr: required")
	} else if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		add("http_addr %q: %v", c.HTTPAddr, err)
	}
	if c.TokensFile == "" && len(c.Tokens) == 0 {
		add("tokens_file: required (bearer tokens, one per line)")
	}
	if c.TokensFile != "" && len(c.Tokens) > 0 {
		add("tokens_file and tokens: set one, not both")
	}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t) == "" {
			add("tokens[%d]: empty token", i)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls.cert_file and tls.key_file: set both or neither")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		add("tls.client_ca_file needs tls.cert_file and tls.key_file")
	}
	ids := map[string]bool{}
	var self *Peer
	for i := range c.Peers {
		p := c.Peers[i]
		if p.ID == "" || p.Address == "" {
			add("peers[%d]: id and address are required", i)
			continue
		}
		if ids[p.ID] {
			add("peers[%d]: duplicate id %q", i, p.ID)
		}
		ids[p.ID] = true
		if p.ID == c.ID {
			self = &c.Peers[i]
		}
	}
	if c.Bootstrap {
		if len(c.Peers) == 0 {
			// A single-replica cluster of this replica alone.
		} else if self == nil {
			add("bootstrap: peers do not include id %q", c.ID)
		} else if tcp {
			adv := c.AdvertiseAddr
			if adv == "" {
				adv = c.BindAddr
			}
			if self.Address != adv {
				add("peers entry %q has address %q but advertise_addr is %q: they must match", c.ID, self.Address, adv)
			}
		}
	}
	// Peers forward to the HTTP address in this replica's peers entry, or to
	// http_addr when the entry has none; that one must be dialable.
	if len(c.Peers) > 0 && c.HTTPAddr != "" && (self == nil || self.HTTP == "") {
		if err := routable(c.HTTPAddr); err != nil {
			add("http_addr %q %v and peers has no http for id %q: peers could not forward to this replica", c.HTTPAddr, err, c.ID)
		}
	}
	if self != nil && self.HTTP != "" {
		if err := routable(self.HTTP); err != nil {
			add("peers entry %q: http %q %v", c.ID, self.HTTP, err)
		}
	}
	if c.ApplyTimeout < 0 || c.ExpireInterval < 0 || c.SnapshotRetain < 0 {
		add("apply_timeout, expire_interval and snapshot_retain must not be negative")
	}
	return errors.Join(errs...)
}

// routable refuses the unspecified addresses, which peers cannot dial.
func routable(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("is not host:port: %v", err)
	}
	if host == "" {
		return errors.New("has no host")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("is unspecified (%s)", host)
	}
	return nil
}

// loadTokens reads bearer tokens, one per line.
func loadTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens_file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens_file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tokens_file %s: no tokens", path)
	}
	return out, nil
}
