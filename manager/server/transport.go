package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

const (
	transportPool    = 3
	transportTimeout = 10 * time.Second
)

// newTransport binds the raft transport: plain TCP, or TCP with the same
// (m)TLS as the HTTP API when TLS is configured, so that the raft port does
// not accept log entries from whoever can reach it.
func (s *Server) newTransport() (*raft.NetworkTransport, error) {
	adv, err := net.ResolveTCPAddr("tcp", s.cfg.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("advertise_addr %q: %w", s.cfg.AdvertiseAddr, err)
	}
	if !s.cfg.TLS.enabled() {
		t, err := raft.NewTCPTransport(s.cfg.BindAddr, adv, transportPool, transportTimeout, raftWriter{s.log})
		if err != nil {
			return nil, fmt.Errorf("bind_addr %q: %w", s.cfg.BindAddr, err)
		}
		return t, nil
	}
	srvConf, cliConf, err := loadTLS(s.cfg.TLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("bind_addr %q: %w", s.cfg.BindAddr, err)
	}
	stream := &tlsStream{Listener: tls.NewListener(ln, srvConf), advertise: adv, client: cliConf}
	return raft.NewNetworkTransport(stream, transportPool, transportTimeout, raftWriter{s.log}), nil
}

// tlsStream is a raft.StreamLayer over TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

func (t *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), t.client)
}

func (t *tlsStream) Addr() net.Addr { return t.advertise }

// loadTLS returns the server side (HTTP API and raft listener) and the
// client side (forwarding and raft dials) of the replica's TLS.
func loadTLS(c TLS) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("tls.client_ca_file %s: no PEM certificates", c.ClientCAFile)
		}
		server.ClientCAs = pool
		server.ClientAuth = tls.RequireAndVerifyClientCert
		client.RootCAs = pool
	}
	return server, client, nil
}

// newRaftLogger sends raft's hclog output to slog.
func newRaftLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      raftWriter{log},
		DisableTime: true,
	})
}

// raftWriter turns lines of raft's logs into slog records, at the level
// the line names.
type raftWriter struct{ log *slog.Logger }

func (w raftWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		msg := strings.TrimSpace(string(line))
		if msg == "" {
			continue
		}
		level := slog.LevelInfo
		switch {
		case strings.HasPrefix(msg, "[ERROR]"), strings.Contains(msg, "[ERR]"):
			level = slog.LevelError
		case strings.HasPrefix(msg, "[WARN]"):
			level = slog.LevelWarn
		case strings.HasPrefix(msg, "[DEBUG]"), strings.HasPrefix(msg, "[TRACE]"):
			level = slog.LevelDebug
		}
		w.log.Log(context.Background(), level, "raft", "line", msg)
	}
	return len(p), nil
}
