package yamlfield

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

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
	if err := wholeNumbers(data, reflect.TypeOf(out)); err != nil {
		return err
	}
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

// wholeNumbers refuses a fraction where an integer or a duration goes:
// yaml.v3 truncates 1.5 to 1 there without a word.
func wholeNumbers(data []byte, root reflect.Type) error {
	var errs Errors
	for _, k := range keysOf(data, deref(root)) {
		if k.typ == nil || k.valueTag != "!!float" {
			continue
		}
		switch {
		case k.typ == reflect.TypeFor[time.Duration]():
			errs = append(errs, &FieldError{Line: k.valueLine, Path: k.path, Msg: fmt.Sprintf("want a duration like 30s, got %s", k.value)})
		case k.typ.Kind() >= reflect.Int && k.typ.Kind() <= reflect.Uint64:
			errs = append(errs, &FieldError{Line: k.valueLine, Path: k.path, Msg: fmt.Sprintf("want a whole number, got %s", k.value)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
