// Package httpjson writes the answers of nerve's JSON HTTP APIs (the agent's
// /decisions and /incidents): indented JSON, and one shape of error that
// names the query parameter at fault when there is one.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Error is the body of every error answer.
type Error struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

// Write answers code with v as indented JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent; a failed write has no one to tell
}

// WriteError answers code with an Error naming param ("" for none).
func WriteError(w http.ResponseWriter, code int, param, msg string) {
	Write(w, code, Error{Error: msg, Parameter: param})
}
