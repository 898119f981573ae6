package goals

import "github.com/nervehq/nerve/internal/yamlfield"

// FieldError is one problem with a goals document. Callers that need the
// field use errors.As; everyone else prints it.
type FieldError = yamlfield.FieldError

// Errors is every problem found in one document, so that an operator fixes
// it in one pass. It prints on one line.
type Errors = yamlfield.Errors
