package goals

import (
	"reflect"

	"github.com/nervehq/nerve/internal/yamlfield"
)

// FieldError is one problem with a goals document. Callers that need the
// field use errors.As; everyone else prints it.
type FieldError = yamlfield.FieldError

// Errors is every problem found in one document, so that an operator fixes
// it in one pass. It prints on one line.
type Errors = yamlfield.Errors

// explain turns a yaml.v3 error into Errors that name the field by its YAML
// path.
func explain(data []byte, err error) error {
	return yamlfield.Explain(data, err, reflect.TypeFor[Goals]())
}
