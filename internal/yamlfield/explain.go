package yamlfield

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	// (?s): quoted values can hold newlines.
	lineMsgRE      = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`(?s)^field (.+) not found in type (\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`(?s)^mapping key "(.*)" already defined at line (\d+)$`)
	wrongTypeRE    = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
)

// Explain turns err, an error of decoding data with yaml.v3, into Errors that
// name each field by its YAML path, found by looking up which key of data
// sits on the line yaml.v3 reports. root is the Go type data was decoded
// into: it lists the fields known where an unknown one stands, and says what
// a field of the wrong type should hold ("an integer", "a duration like
// ..."). Explain returns nil when err is nil.
func Explain(data []byte, err error, root reflect.Type) error {
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error: the line is where the parser gave up, which need
		// not be a key, so no path is looked up.
		msg := oneLine(strings.TrimPrefix(err.Error(), "yaml: "))
		fe := &FieldError{Msg: "invalid YAML: " + msg}
		if m := lineMsgRE.FindStringSubmatch(msg); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = "invalid YAML: " + m[2]
		}
		return Errors{fe}
	}
	root = deref(root)
	x := explainer{keys: keysOf(data, root), types: typesOf(root)}
	if root != nil {
		x.root = root.String()
	}
	var errs Errors
	for _, s := range te.Errors {
		m := lineMsgRE.FindStringSubmatch(s)
		if m == nil {
			errs = append(errs, &FieldError{Msg: oneLine(s)})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		errs = append(errs, x.explainOne(line, m[2]))
	}
	return errs
}

// explainer holds what Explain knows of one document.
type explainer struct {
	keys  []keyPos
	types map[string]reflect.Type // the schema's types by their names in yaml.v3's messages
	root  string                  // name of the document's type
}

// explainOne rewrites one yaml.v3 type error found at line.
func (x *explainer) explainOne(line int, msg string) *FieldError {
	fe := &FieldError{Line: line, Msg: oneLine(msg)}
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		k, ok := pick(x.keys, func(k keyPos) bool {
			return k.keyLine == line && k.key == m[1] && (k.in == nil || k.in.String() == m[2])
		})
		fe.Msg = "unknown field"
		if ok {
			fe.Path = k.path
			if known := fieldNames(k.in); len(known) > 0 {
				fe.Msg += " (known here: " + strings.Join(known, ", ") + ")"
			}
		}
		return fe
	}
	if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
		k, _ := pick(x.keys, func(k keyPos) bool { return k.keyLine == line && k.key == m[1] })
		fe.Path = k.path
		fe.Msg = "set twice (first at line " + m[2] + ")"
		return fe
	}
	if m := wrongTypeRE.FindStringSubmatch(msg); m != nil {
		tag, value, goType := m[1], m[2], m[3]
		k, _ := pick(x.keys, func(k keyPos) bool {
			if k.valueLine != line || k.valueTag != tag || (k.typ != nil && k.typ.String() != goType) {
				return false
			}
			// yaml.v3 quotes at most 10 bytes of the value, cutting longer
			// ones to 7 and "...".
			return value == "" || k.value == value ||
				(strings.HasSuffix(value, "...") && strings.HasPrefix(k.value, strings.TrimSuffix(value, "...")))
		})
		fe.Path = k.path
		got := describeTag(tag)
		if value != "" {
			got = strconv.Quote(value)
		}
		if goType == x.root {
			fe.Msg = "the file must be a mapping of settings, got " + got
		} else {
			fe.Msg = "must be " + x.describe(goType) + ", got " + got
		}
	}
	return fe
}

// describe names the Go type yaml.v3 calls goType the way a YAML author
// thinks of it.
func (x *explainer) describe(goType string) string {
	if t, ok := x.types[goType]; ok {
		return describeType(t)
	}
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	}
	return "of type " + goType
}

// pick returns the one key that matches, preferring the shallowest, or false
// when there is none or that is ambiguous (two keys on one line of a flow
// mapping, say): no path is better than a wrong one.
func pick(keys []keyPos, match func(keyPos) bool) (keyPos, bool) {
	var best keyPos
	depth, tie := -1, false
	for _, k := range keys {
		if !match(k) {
			continue
		}
		switch {
		case depth < 0 || k.depth < depth:
			best, depth, tie = k, k.depth, false
		case k.depth == depth:
			tie = true
		}
	}
	if depth < 0 || tie {
		return keyPos{}, false
	}
	return best, true
}

// keyPos is where one key of the document sits.
type keyPos struct {
	path      string // dotted path of the key, like "targets[0].name"
	key       string
	depth     int          // how many mappings hold the key's mapping
	in        reflect.Type // the Go type of the key's mapping, or nil when not known
	typ       reflect.Type // the Go type of the key's value, or nil when not known
	keyLine   int
	valueLine int
	valueTag  string // short tag of the value, like !!str or !!map
	value     string // scalar value, "" for collections
}

// Paths lists the YAML path of every key of the first document in data, in
// the order they appear, or nil when data does not parse.
func Paths(data []byte) []string {
	var paths []string
	for _, k := range keysOf(data, nil) {
		paths = append(paths, k.path)
	}
	return paths
}

// keysOf lists every key of the first document with its position, and, while
// root describes it, the Go types of the mapping that holds it and of its
// value, which tell apart keys that the line and the value cannot. It returns nil
// when data does not parse, which only costs the errors their paths.
func keysOf(data []byte, root reflect.Type) []keyPos {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var keys []keyPos
	var walk func(n *yaml.Node, prefix string, depth int, t reflect.Type)
	walk = func(n *yaml.Node, prefix string, depth int, t reflect.Type) {
		t = deref(t)
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix, depth, t)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				kp := keyPos{
					path: path, key: k.Value, depth: depth,
					in: t, typ: deref(fieldType(t, k.Value)),
					keyLine: k.Line, valueLine: v.Line, valueTag: v.ShortTag(),
				}
				if v.Kind == yaml.ScalarNode {
					kp.value = v.Value
				}
				keys = append(keys, kp)
				// Aliases are not followed: their errors carry the
				// anchor's line, which the anchor's own key already covers.
				walk(v, path, depth+1, kp.typ)
			}
		case yaml.SequenceNode:
			var elem reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				elem = t.Elem()
			}
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", prefix, i), depth, elem)
			}
		}
	}
	walk(&doc, "", 0, root)
	return keys
}

// oneLine escapes line breaks, which yaml.v3 copies from the document into
// its messages, because an error is reported as one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

func describeTag(tag string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	}
	return tag
}
