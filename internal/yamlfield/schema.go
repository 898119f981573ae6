package yamlfield

import (
	"reflect"
	"strings"
	"time"
)

// Name is the key the struct field f has in a YAML document, as yaml.v3
// reads it, or "" when it has none: yaml.v3 skips the field, or inlines it
// (",inline"), so that the inlined fields stand in the parent's mapping.
func Name(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, opts := tagOf(f)
	switch {
	case name == "-" || inline(opts):
		return ""
	case name == "":
		return strings.ToLower(f.Name)
	}
	return name
}

// tagOf splits f's yaml tag into the key and its options.
func tagOf(f reflect.StructField) (name, opts string) {
	name, opts, _ = strings.Cut(f.Tag.Get("yaml"), ",")
	return name, opts
}

func inline(opts string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == "inline" {
			return true
		}
	}
	return false
}

// field is one key of a struct's mapping and the Go type of its value.
type field struct {
	name string
	typ  reflect.Type
}

// fields lists the keys of struct t's mapping, with the fields of inlined
// structs in the place of the struct, in declaration order.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if name, opts := tagOf(f); name != "-" && inline(opts) {
			// yaml.v3 inlines unexported embedded structs too.
			if ft := deref(f.Type); ft.Kind() == reflect.Struct && (f.IsExported() || f.Anonymous) {
				out = append(out, fields(ft)...)
			}
			continue
		}
		if name := Name(f); name != "" {
			out = append(out, field{name, f.Type})
		}
	}
	return out
}

// fieldNames lists the keys a mapping decoded into t may hold, or nil when t
// is not a struct.
func fieldNames(t reflect.Type) []string {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for _, f := range fields(t) {
		names = append(names, f.name)
	}
	return names
}

// fieldType is the Go type of the value of key in a mapping decoded into t,
// or nil when not known.
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for _, f := range fields(t) {
			if f.name == key {
				return f.typ
			}
		}
	}
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var durationType = reflect.TypeFor[time.Duration]()

// typesOf indexes by name every type a field of root can have, and the
// basic ones, which is how yaml.v3's messages name the type they wanted.
func typesOf(root reflect.Type) map[string]reflect.Type {
	types := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		if t == nil {
			return
		}
		if _, ok := types[t.String()]; ok {
			return
		}
		types[t.String()] = t
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			add(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				add(t.Field(i).Type)
			}
		}
	}
	for _, t := range []reflect.Type{
		reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](),
		reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](),
		reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[bool](), reflect.TypeFor[string](),
		durationType, root,
	} {
		add(t)
	}
	return types
}

// describeType names a Go type the way a YAML author thinks of it.
func describeType(t reflect.Type) string {
	if t == durationType {
		return `a duration like "50ms" or "0s"`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return "of type " + t.String()
}
