package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/manager"
	"github.com/nervehq/nerve/manager/client"
)

// Reporter stores a report in the manager's history; *client.Client is one.
type Reporter interface {
	Report(ctx context.Context, r manager.Report) error
}

var _ Reporter = (*client.Client)(nil)

// Record stores r in the manager's history as a report of r.Node whose
// decision is r's JSON. The ID comes from r.Start, so recording the same
// result again stores it once. It returns the ID.
func Record(ctx context.Context, rep Reporter, r Result) (string, error) {
	id := "preflight-" + r.Start.UTC().Format("20060102T150405.000000000Z")
	doc, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode preflight result: %w", err)
	}
	if err := rep.Report(ctx, manager.Report{Node: r.Node, ID: id, Decision: doc}); err != nil {
		return "", err
	}
	return id, nil
}

// RecordOrWarn records r like Record and logs the outcome. A failure is
// a warning and nothing more: the checks decide whether the node starts,
// and a manager that is away must not keep a healthy node down.
func RecordOrWarn(ctx context.Context, logger *slog.Logger, rep Reporter, r Result) {
	id, err := Record(ctx, rep, r)
	if err != nil {
		logger.Warn("preflight result not recorded at the manager", "err", err)
		return
	}
	logger.Info("preflight result recorded at the manager", "node", r.Node, "id", id)
}

// ManagerClient returns a client of the manager section when it names
// endpoints and a token file, else nil: only then is a result recorded.
// It reads the token and TLS files now. A preflight waits for a manager
// only briefly, so the client tries each replica about once.
func ManagerClient(m config.Manager, opts ...client.Option) (*client.Client, error) {
	if len(m.Endpoints) == 0 || m.TokenFile == "" {
		return nil, nil
	}
	token, err := client.ReadTokenFile(m.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("manager.token_file: %w", err)
	}
	copts := []client.Option{
		client.WithRetry(max(2, len(m.Endpoints)), 200*time.Millisecond, time.Second),
		client.WithRequestTimeout(5 * time.Second),
	}
	tc, err := client.TLSConfig(m.CAFile, m.CertFile, m.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("manager.ca_file, manager.cert_file, manager.key_file: %w", err)
	}
	if tc != nil {
		copts = append(copts, client.WithTLS(tc))
	}
	c, err := client.New(m.Endpoints, token, append(copts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("manager.endpoints: %w", err)
	}
	return c, nil
}

// NodeName is this node's name at the manager: manager.node, else the
// hostname.
func NodeName(m config.Manager) (string, error) {
	if m.Node != "" {
		return m.Node, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("manager.node is not set and the hostname is unknown: %w", err)
	}
	return h, nil
}
