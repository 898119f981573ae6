package actions

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
)

// alertSink is a webhook receiver that keeps what it is sent and answers
// with status.
type alertSink struct {
	mu     sync.Mutex
	got    []Alert
	status int
}

func (s *alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a Alert
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != 0 && s.status != http.StatusOK {
		http.Error(w, "try later", s.status)
		return
	}
	s.got = append(s.got, a)
}

func (s *alertSink) alerts() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Alert(nil), s.got...)
}

func (s *alertSink) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func TestWebhookRateLimitCountsSuppressed(t *testing.T) {
	sink := &alertSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	clock := time.Unix(1_700_000_000, 0)
	w := &Webhook{URL: srv.URL, MinInterval: time.Minute, Client: srv.Client(), now: func() time.Time { return clock }}
	sdb := Alert{DecisionID: "d1", Node: "cass-1", Kind: actuator.SlowDrive, Subject: "sdb", Summary: "sdb is slow",
		Evidence: []actuator.Evidence{{Signal: "disk.service_idle_p99{device=sdb}", Value: 0.08, Unit: "seconds", Threshold: 0.02, For: 5 * time.Minute}}}
	sdc := sdb
	sdc.Subject = "sdc"
	ctx := context.Background()

	steps := []struct {
		advance time.Duration
		alert   Alert
		limited bool
	}{
		{0, sdb, false},
		{10 * time.Second, sdb, true},
		{10 * time.Second, sdc, false}, // another subject has its own limit
		{10 * time.Second, sdb, true},
		{time.Minute, sdb, false}, // carries the two held back
		{0, sdb, true},
	}
	for i, s := range steps {
		clock = clock.Add(s.advance)
		err := w.Send(ctx, s.alert)
		if got := errors.Is(err, actuator.ErrRateLimited); got != s.limited || (err != nil && !got) {
			t.Fatalf("step %d: Send = %v, want rate limited %v", i, err, s.limited)
		}
	}

	got := sink.alerts()
	var subjects []string
	var suppressed []int
	for _, a := range got {
		subjects = append(subjects, a.Subject)
		suppressed = append(suppressed, a.Suppressed)
	}
	if strings.Join(subjects, ",") != "sdb,sdc,sdb" {
		t.Fatalf("subjects sent = %v, want [sdb sdc sdb]", subjects)
	}
	if suppressed[0] != 0 || suppressed[1] != 0 || suppressed[2] != 2 {
		t.Errorf("suppressed counts = %v, want [0 0 2]", suppressed)
	}
	if len(got[0].Evidence) != 1 || got[0].Evidence[0] != sdb.Evidence[0] || got[0].DecisionID != "d1" || got[0].Node != "cass-1" {
		t.Errorf("first alert = %+v, want %+v", got[0], sdb)
	}
}

func TestWebhookFailureIsRetried(t *testing.T) {
	sink := &alertSink{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	clock := time.Unix(1_700_000_000, 0)
	w := &Webhook{URL: srv.URL, MinInterval: time.Hour, Client: srv.Client(), now: func() time.Time { return clock }}
	a := Alert{Kind: actuator.QueryOfDeath, Subject: "pid 1234 (cassandra)"}
	ctx := context.Background()

	if err := w.Send(ctx, a); err == nil || !strings.Contains(err.Error(), "503") || errors.Is(err, actuator.ErrRateLimited) {
		t.Fatalf("Send to a failing server = %v, want a 503 error", err)
	}
	sink.setStatus(http.StatusOK)
	clock = clock.Add(time.Second)
	if err := w.Send(ctx, a); err != nil {
		t.Fatalf("Send after the failure = %v, want it sent", err)
	}
	if n := len(sink.alerts()); n != 1 {
		t.Errorf("alerts received = %d, want 1", n)
	}
}

func TestWebhookErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more

	for _, w := range []*Webhook{
		{URL: url},
		{URL: "://not a url"},
		{URL: ""},
	} {
		if err := w.Send(context.Background(), Alert{Kind: actuator.CPUOverload, Subject: "node"}); err == nil {
			t.Errorf("Send to %q succeeded, want an error", w.URL)
		}
	}
}
