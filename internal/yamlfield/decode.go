package yamlfield

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Decode decodes the one YAML document data holds into out, a pointer,
// leaving the fields data does not name as they were. Unknown fields are
// errors: a misspelt setting that silently keeps its default would act on
// values nobody chose. Data with no document (empty, or only comments)
// changes nothing. A second document is an error too, since Decode would
// otherwise ignore it and its settings would silently not apply; kind names
// the file in that message ("a config file holds one"). Errors are
// explained through Explain, with out's type as the root.
func Decode(data []byte, out any, kind string) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return Explain(data, err, reflect.TypeOf(out))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return Explain(data, err, reflect.TypeOf(out))
	default:
		return &FieldError{Line: next.Line, Msg: fmt.Sprintf("more than one YAML document; a %s holds one", kind)}
	}
}
