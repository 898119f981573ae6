package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Fetch reads the newest decisions from a running agent's /decisions, for
// `nerve status`. addr is host:port or a URL.
func Fetch(ctx context.Context, addr string, limit int) ([]Decision, error) {
	base := addr
	if !strings.Contains(base, "://") {
		if strings.HasPrefix(base, ":") {
			base = "localhost" + base
		}
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("agent address %q: %w", addr, err)
	}
	u.Path = "/decisions"
	u.RawQuery = url.Values{"limit": {strconv.Itoa(limit)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the agent at %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read decisions from %s: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent at %s: %s: %s", u.Host, resp.Status, strings.TrimSpace(string(body)))
	}
	var out []Decision
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decisions from %s: %w", u.Host, err)
	}
	return out, nil
}
