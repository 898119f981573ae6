package yamlfield

import (
	"fmt"
	"strings"
)

// FieldError is one problem with a document. Callers that need the field use
// errors.As; everyone else prints it.
type FieldError struct {
	// Line is the line in the document, or 0 when not known (problems found
	// by checking decoded values, which have no lines).
	Line int
	// Path is the field's YAML path, like "probes.blockio.max_devices" or
	// "targets[0].name", or "" when the problem is not about one field (a
	// YAML syntax error).
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one document, so that an operator fixes
// it in one pass rather than one restart per mistake. It prints on one line
// because the agent reports a bad file as a single line on stderr.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find each *FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
