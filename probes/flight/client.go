package flight

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrNotFound means the agent has no such incident.
var ErrNotFound = errors.New("no such incident")

// Client reads a running agent's flight recorder, for `nerve report`.
type Client struct {
	// Addr is the agent's web address: host:port, :port or a URL.
	Addr string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// Live asks for the recorder's outliers that q picks (GET /incidents/live).
func (c Client) Live(ctx context.Context, q Query) (Report, error) {
	var r Report
	body, _, err := c.get(ctx, "/incidents/live", q.Values())
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("outliers from %s: %w", c.Addr, err)
	}
	return r, nil
}

// Bundle fetches a decision's bundle (GET /incidents/{id}).
func (c Client) Bundle(ctx context.Context, id string) (Report, error) {
	var r Report
	body, _, err := c.get(ctx, "/incidents/"+id, nil)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("incident %s from %s: %w", id, c.Addr, err)
	}
	return r, nil
}

// Decisions fetches, as the agent wrote them, the decisions an incident
// belongs to: the decision id when it is set, else those made in the window
// from since. It is a JSON array, empty when the agent's actuator is off.
func (c Client) Decisions(ctx context.Context, id string, since time.Time) (json.RawMessage, error) {
	if id != "" {
		body, code, err := c.get(ctx, "/decisions/"+id, nil)
		if code == http.StatusNotFound {
			return json.RawMessage("[]"), nil
		}
		if err != nil {
			return nil, err
		}
		return json.RawMessage("[" + strings.TrimSpace(string(body)) + "]"), nil
	}
	v := url.Values{"limit": {"1000"}}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format(time.RFC3339))
	}
	body, code, err := c.get(ctx, "/decisions", v)
	if code == http.StatusNotFound {
		return json.RawMessage("[]"), nil // no actuator
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSpace(body)), nil
}

// get returns the body of a 200 answer; otherwise an error, with the
// status code (0 when the agent did not answer).
func (c Client) get(ctx context.Context, path string, q url.Values) ([]byte, int, error) {
	base := c.Addr
	if !strings.Contains(base, "://") {
		if strings.HasPrefix(base, ":") {
			base = "localhost" + base
		}
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, 0, fmt.Errorf("agent address %q: %w", c.Addr, err)
	}
	u.Path = path // escaped by String
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("ask the agent at %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("read %s from %s: %w", path, u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("agent at %s: %s: %s", u.Host, resp.Status, msg)
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/incidents/") {
			// The agent's own words repeat the id ("incident X: no
			// such bundle") or are the mux's ("404 page not found").
			err = fmt.Errorf("%w %q at the agent at %s", ErrNotFound, strings.TrimPrefix(path, "/incidents/"), u.Host)
		}
		return nil, resp.StatusCode, err
	}
	return body, resp.StatusCode, nil
}

// WriteArchive writes a report as a .tar.gz for a ticket: summary.json
// (the report without its raw events), events.json (the raw events),
// decisions.json (the decisions it belongs to, as the agent wrote them)
// and report.txt (Text).
func WriteArchive(w io.Writer, r Report, decisions json.RawMessage) error {
	head := r
	head.Events = nil
	summary, err := json.MarshalIndent(struct {
		Report
		Events []Event `json:"events,omitempty"`
	}{Report: head}, "", "  ")
	if err != nil {
		return err
	}
	events, err := json.MarshalIndent(r.Events, "", "  ")
	if err != nil {
		return err
	}
	if len(decisions) == 0 {
		decisions = json.RawMessage("[]")
	}
	var dec bytes.Buffer
	if err := json.Indent(&dec, decisions, "", "  "); err != nil {
		return fmt.Errorf("decisions: %w", err)
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mtime := r.At
	if mtime.IsZero() {
		mtime = time.Now()
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"summary.json", summary},
		{"events.json", events},
		{"decisions.json", dec.Bytes()},
		{"report.txt", []byte(Text(r, 20))},
	} {
		data := append(bytes.TrimRight(f.data, "\n"), '\n')
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
