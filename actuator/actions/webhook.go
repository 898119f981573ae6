package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nervehq/nerve/actuator"
)

// DefaultWebhookTimeout bounds one POST when Webhook.Client is nil.
const DefaultWebhookTimeout = 10 * time.Second

// Alert is what a webhook receives, as JSON.
type Alert struct {
	DecisionID string              `json:"decision_id"`
	Node       string              `json:"node"`
	Kind       actuator.Kind       `json:"kind"`
	Subject    string              `json:"subject"`
	Summary    string              `json:"summary"`
	Evidence   []actuator.Evidence `json:"evidence"`
	// Suppressed counts the alerts for the same kind and subject that the
	// rate limit held back since the last one sent. Send sets it.
	Suppressed int `json:"suppressed"`
}

// Webhook posts alerts as JSON, at most one per (kind, subject) every
// MinInterval, so a condition that holds for an hour is one alert and a
// count, not one per tick. Use it by pointer; it is safe for concurrent use.
type Webhook struct {
	URL         string
	MinInterval time.Duration
	Client      *http.Client // nil means a client with DefaultWebhookTimeout

	now func() time.Time // for tests; nil means time.Now

	mu   sync.Mutex
	last map[alertKey]*alertState // guarded by mu
}

type alertKey struct {
	kind    actuator.Kind
	subject string
}

type alertState struct {
	sent       time.Time // of the last alert delivered
	suppressed int       // held back since then
}

// Send posts the alert unless one for the same kind and subject was sent less
// than MinInterval ago; then it counts it and returns an error wrapping
// actuator.ErrRateLimited. A failed POST is returned as an error and does not
// count as sent, so the next alert tries again and carries the count.
func (w *Webhook) Send(ctx context.Context, a Alert) error {
	key := alertKey{a.Kind, a.Subject}
	now := time.Now
	if w.now != nil {
		now = w.now
	}

	w.mu.Lock()
	if w.last == nil {
		w.last = make(map[alertKey]*alertState)
	}
	t := now()
	st := w.last[key]
	if st == nil {
		// Subjects come and go (a JVM's pid): forget the quiet ones.
		for k, old := range w.last {
			if old.suppressed == 0 && t.Sub(old.sent) >= w.MinInterval {
				delete(w.last, k)
			}
		}
		st = &alertState{}
		w.last[key] = st
	}
	if !st.sent.IsZero() && t.Sub(st.sent) < w.MinInterval {
		st.suppressed++
		w.mu.Unlock()
		return fmt.Errorf("webhook alert %s %q: %w", a.Kind, a.Subject, actuator.ErrRateLimited)
	}
	// Claim the slot before posting, so that concurrent alerts for the
	// same key do not both go out; a failure gives it back.
	prev := *st
	a.Suppressed = st.suppressed
	st.sent, st.suppressed = t, 0
	w.mu.Unlock()

	if err := w.post(ctx, a); err != nil {
		w.mu.Lock()
		st.sent = prev.sent
		st.suppressed += prev.suppressed
		w.mu.Unlock()
		return fmt.Errorf("webhook alert %s %q: %w", a.Kind, a.Subject, err)
	}
	return nil
}

func (w *Webhook) post(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read a little, for the error, and let the connection be reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %q", w.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
