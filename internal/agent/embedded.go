package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager/server"
)

// Embedded manager addresses: loopback only, one replica, for a one-box trial.
const (
	embeddedRaft = "127.0.0.1:19650"
	embeddedHTTP = "127.0.0.1:19649"
)

// startEmbeddedManager runs a single-replica manager in the agent's process
// (--manager=embedded) and points the agent's rack lock at it. Its state and
// a generated bearer token live under the actuator's state directory. It
// returns a function that stops the replica.
func startEmbeddedManager(ctx context.Context, a *agent, cfg *config.Config) (func(), error) {
	dir := filepath.Join(cfg.Actuator.StateDir, "manager")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded manager: %w", err)
	}
	tokenFile := filepath.Join(dir, "token")
	token, err := os.ReadFile(tokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		token = []byte(hex.EncodeToString(b) + "\n")
		if err := os.WriteFile(tokenFile, token, 0o600); err != nil {
			return nil, fmt.Errorf("embedded manager: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("embedded manager: %w", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "local"
	}
	s, err := server.New(server.Config{
		ID: host, Dir: dir, BindAddr: embeddedRaft, AdvertiseAddr: embeddedRaft, HTTPAddr: embeddedHTTP,
		Bootstrap: true, Peers: []server.Peer{{ID: host, Address: embeddedRaft, HTTP: embeddedHTTP}},
		Tokens: []string{strings.TrimSpace(string(token))}, Logger: a.logger.With("component", "manager"),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded manager: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded manager: %w", err)
	}
	m := &cfg.Manager
	m.Endpoints = []string{"http://" + embeddedHTTP}
	m.TokenFile = tokenFile
	if m.Cluster == "" {
		m.Cluster = "local"
	}
	if m.Rack == "" {
		m.Rack = "local"
	}
	cfg.Actuator.Lock = "manager"
	a.logger.Info("embedded manager running", "http", embeddedHTTP, "state", dir)
	return func() { s.Close() }, nil
}
