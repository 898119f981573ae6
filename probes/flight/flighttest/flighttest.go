// Package flighttest holds a flight.Sink for tests: it keeps every event it
// is given.
package flighttest

import (
	"sync"
	"time"

	"github.com/nervehq/nerve/probes/flight"
)

// Sink keeps the events recorded into it; the zero value is ready to use.
type Sink struct {
	mu     sync.Mutex
	events []flight.Event // guarded by mu
}

var _ flight.Sink = (*Sink)(nil)

// Record implements flight.Sink.
func (s *Sink) Record(e flight.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

// Events returns the events recorded so far that match keep (all of them
// when keep is nil), oldest first.
func (s *Sink) Events(keep func(flight.Event) bool) []flight.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []flight.Event
	for _, e := range s.events {
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// Len is the number of events recorded so far.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Wait polls until at least n recorded events match keep, or timeout
// passes, and returns the matching events.
func (s *Sink) Wait(n int, timeout time.Duration, keep func(flight.Event) bool) []flight.Event {
	deadline := time.Now().Add(timeout)
	for {
		got := s.Events(keep)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
