package report

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nervehq/nerve/internal/httpjson"
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
				httpjson.WriteError(w, http.StatusBadRequest, "since", fmt.Sprintf("since %q: want an RFC 3339 time, e.g. 2025-03-04T05:00:00Z", v))
				return
			}
			since = t
		}
		limit := defaultLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxLimit {
				httpjson.WriteError(w, http.StatusBadRequest, "limit", fmt.Sprintf("limit %q: want a number from 1 to %d", v, maxLimit))
				return
			}
			limit = n
		}
		ds, err := s.List(since, limit)
		if err != nil {
			httpjson.WriteError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, ds)
	})
	mux.HandleFunc("GET /decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.Get(r.PathValue("id"))
		switch {
		case errors.Is(err, ErrNotFound):
			httpjson.WriteError(w, http.StatusNotFound, "id", err.Error())
		case err != nil:
			httpjson.WriteError(w, http.StatusInternalServerError, "", err.Error())
		default:
			httpjson.Write(w, http.StatusOK, d)
		}
	})
	return mux
}
