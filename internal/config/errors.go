package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with a configuration. Callers that need the
// field use errors.As; everyone else prints it.
type FieldError struct {
	// Line is the line in the file, or 0 when not known (problems found by
	// Validate, which sees values, not text).
	Line int
	// Path is the setting's YAML path, like "probes.blockio.max_devices", or
	// "" when the problem is not about one setting (a YAML syntax error).
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

// Errors is every problem found in one configuration, so that an operator
// fixes a file in one pass rather than one restart per mistake. It prints on
// one line because the agent reports a bad config as a single line on stderr.
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

var (
	// (?s): quoted values can hold newlines.
	lineMsgRE      = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`(?s)^field (.+) not found in type (\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`(?s)^mapping key "(.*)" already defined at line (\d+)$`)
	wrongTypeRE    = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
)

// explain turns a yaml.v3 error into Errors that name the field. yaml.v3
// reports a line and a Go type ("line 7: cannot unmarshal !!str `x` into
// int"); an operator needs the setting's path, so the path is found by
// looking up which key of the document sits on that line.
func explain(data []byte, err error) error {
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
	keys := keysOf(data)
	var errs Errors
	for _, s := range te.Errors {
		m := lineMsgRE.FindStringSubmatch(s)
		if m == nil {
			errs = append(errs, &FieldError{Msg: oneLine(s)})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		errs = append(errs, explainOne(keys, line, m[2]))
	}
	return errs
}

// explainOne rewrites one yaml.v3 type error found at line.
func explainOne(keys []keyPos, line int, msg string) *FieldError {
	fe := &FieldError{Line: line, Msg: oneLine(msg)}
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		fe.Path = pick(keys, func(k keyPos) bool { return k.keyLine == line && k.key == m[1] })
		fe.Msg = "unknown field"
		if known := fieldsAt(parentOf(fe.Path)); fe.Path != "" && len(known) > 0 {
			fe.Msg += " (known here: " + strings.Join(known, ", ") + ")"
		}
		return fe
	}
	if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
		fe.Path = pick(keys, func(k keyPos) bool { return k.keyLine == line && k.key == m[1] })
		fe.Msg = "set twice (first at line " + m[2] + ")"
		return fe
	}
	if m := wrongTypeRE.FindStringSubmatch(msg); m != nil {
		tag, value, goType := m[1], m[2], m[3]
		fe.Path = pick(keys, func(k keyPos) bool {
			if k.valueLine != line || k.valueTag != tag {
				return false
			}
			// yaml.v3 quotes at most 10 bytes of the value, cutting longer
			// ones to 7 and "...".
			return value == "" || k.value == value ||
				(strings.HasSuffix(value, "...") && strings.HasPrefix(k.value, strings.TrimSuffix(value, "...")))
		})
		got := describeTag(tag)
		if value != "" {
			got = strconv.Quote(value)
		}
		if goType == "config.Config" {
			fe.Msg = "the file must be a mapping of settings, got " + got
		} else {
			fe.Msg = "must be " + describeGoType(goType) + ", got " + got
		}
	}
	return fe
}

// pick returns the path of the one key that matches, preferring the
// shallowest, or "" when that is ambiguous (two keys on one line of a flow
// mapping, say): no path is better than a wrong one.
func pick(keys []keyPos, match func(keyPos) bool) string {
	best, depth, tie := "", -1, false
	for _, k := range keys {
		if !match(k) {
			continue
		}
		d := strings.Count(k.path, ".")
		switch {
		case depth < 0 || d < depth:
			best, depth, tie = k.path, d, false
		case d == depth:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// keyPos is where one key of the document sits.
type keyPos struct {
	path      string // dotted path of the key
	key       string
	keyLine   int
	valueLine int
	valueTag  string // short tag of the value, like !!str or !!map
	value     string // scalar value, "" for collections
}

// keysOf lists every key of the first document with its position. It returns
// nil when data does not parse, which only costs the errors their paths.
func keysOf(data []byte) []keyPos {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	var keys []keyPos
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				kp := keyPos{path: path, key: k.Value, keyLine: k.Line, valueLine: v.Line, valueTag: v.ShortTag()}
				if v.Kind == yaml.ScalarNode {
					kp.value = v.Value
				}
				keys = append(keys, kp)
				// Aliases are not followed: their errors carry the
				// anchor's line, which the anchor's own key already covers.
				walk(v, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
	walk(&root, "")
	return keys
}

// oneLine escapes line breaks, which yaml.v3 copies from the file into its
// messages, because a config error is reported as one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

func parentOf(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
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

// describeGoType names a Go type the way a YAML author thinks of it.
func describeGoType(goType string) string {
	switch goType {
	case "int", "int8", "int16", "int32", "int64":
		return "an integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a non-negative integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	if strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "config.") {
		return "a mapping"
	}
	return "of type " + goType
}

// fieldsAt lists the setting names under the mapping at path ("" = the top
// level), or nil when path is not a mapping of the schema.
func fieldsAt(path string) []string {
	t := reflect.TypeFor[Config]()
	if path != "" {
		for name := range strings.SplitSeq(path, ".") {
			name, _, indexed := strings.Cut(name, "[") // targets[0] is an element of targets
			f, ok := fieldByName(t, name)
			if !ok {
				return nil
			}
			t = f.Type
			if indexed && t.Kind() == reflect.Slice {
				t = t.Elem()
			}
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName is the field's name in the file, or "" for fields yaml skips.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}
