package client

import (
	"fmt"
	"net/http"

	"github.com/nervehq/nerve/manager"
)

// APIError is an answer of the manager other than 2xx. It unwraps to the
// manager's sentinel for its code, so callers use errors.Is.
type APIError struct {
	Endpoint string // the replica that answered
	Status   int    // the HTTP status
	Code     string // rack_busy, stale_token, ...; "" when the body had none
	Message  string // the manager's words, or the body when it was not JSON
	Leader   string // with not_leader: the leader's host:port, when known
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	if e.Message == "" {
		return fmt.Sprintf("manager %s: %d %s", e.Endpoint, e.Status, code)
	}
	return fmt.Sprintf("manager %s: %d %s: %s", e.Endpoint, e.Status, code, e.Message)
}

// Unwrap gives the manager's sentinel error for the code, or for the status
// when the code is missing or unknown; nil when neither says.
func (e *APIError) Unwrap() error {
	if err, ok := codes[e.Code]; ok {
		return err
	}
	switch e.Status {
	case http.StatusBadRequest:
		return manager.ErrBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return manager.ErrUnauthorized
	case http.StatusNotFound:
		return manager.ErrNotFound
	}
	return nil
}

// codes maps the API's error codes to the manager's sentinel errors.
var codes = map[string]error{
	"rack_busy":    manager.ErrRackBusy,
	"rack_full":    manager.ErrRackFull,
	"stale_token":  manager.ErrStaleToken,
	"not_found":    manager.ErrNotFound,
	"not_leader":   manager.ErrNotLeader,
	"bad_request":  manager.ErrBadRequest,
	"unauthorized": manager.ErrUnauthorized,
}

// notLeader says whether the answer is a replica's refusal to serve as
// leader: 503 with code not_leader. The request was not applied.
func (e *APIError) notLeader() bool {
	return e.Status == http.StatusServiceUnavailable && e.Code == "not_leader"
}
