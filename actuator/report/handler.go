package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Limits of GET /decisions?limit=N.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Handler serves the store, read-only, under /decisions:
//
//	GET /decisions?since=RFC3339&limit=N  newest first (limit 1-1000, default 100)
//	GET /decisions/{id}
//
// Errors are JSON: {"error": "...", "parameter": "since"}; a bad parameter
// is a 400 naming it.
func Handler(s *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var since time.Time
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "since", fmt.Sprintf("since %q: want an RFC 3339 time, e.g. 2025-03-04T05:00:00Z", v))
				return
			}
			since = t
		}
		limit := defaultLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxLimit {
				writeError(w, http.StatusBadRequest, "limit", fmt.Sprintf("limit %q: want a number from 1 to %d", v, maxLimit))
				return
			}
			limit = n
		}
		ds, err := s.List(since, limit)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, ds)
	})
	mux.HandleFunc("GET /decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.Get(r.PathValue("id"))
		switch {
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, "id", err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, "", err.Error())
		default:
			writeJSON(w, http.StatusOK, d)
		}
	})
	return mux
}

type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

func writeError(w http.ResponseWriter, code int, param, msg string) {
	writeJSON(w, code, apiError{Error: msg, Parameter: param})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent; a failed write has no one to tell
}
