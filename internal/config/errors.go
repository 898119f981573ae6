package config

import (
	"reflect"

	"github.com/nervehq/nerve/internal/yamlfield"
)

// FieldError is one problem with a configuration. Callers that need the
// field use errors.As; everyone else prints it.
type FieldError = yamlfield.FieldError

// Errors is every problem found in one configuration, so that an operator
// fixes a file in one pass rather than one restart per mistake.
type Errors = yamlfield.Errors

// yamlName is the field's name in the file, or "" for fields yaml skips.
func yamlName(f reflect.StructField) string {
	return yamlfield.Name(f)
}
