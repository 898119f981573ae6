package goals

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with a goals document. Callers that need the
// field use errors.As; everyone else prints it.
type FieldError struct {
	Line int    // in the file; 0 when not known (Validate sees values, not text)
	Path string // YAML path like "disk.queue_p99.exit"; "" when not about one field
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one document, so that an operator fixes
// it in one pass. It prints on one line.
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
	lineMsgRE      = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`(?s)^field (.+) not found in type \S+$`)
	duplicateKeyRE = regexp.MustCompile(`(?s)^mapping key "(.*)" already defined at line (\d+)$`)
	wrongTypeRE    = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
)

// explain turns a yaml.v3 error, which names a line and a Go type, into
// Errors that name the field by its YAML path, found by looking up which key
// of the document sits on that line.
func explain(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
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

func explainOne(keys []keyPos, line int, msg string) *FieldError {
	fe := &FieldError{Line: line, Msg: oneLine(msg)}
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		fe.Path = pick(keys, func(k keyPos) bool { return k.keyLine == line && k.key == m[1] })
		fe.Msg = "unknown field"
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
			// yaml.v3 quotes at most 10 bytes of a value, cutting longer
			// ones to 7 and "...".
			return k.valueLine == line && k.valueTag == tag && (value == "" || k.value == value ||
				(strings.HasSuffix(value, "...") && strings.HasPrefix(k.value, strings.TrimSuffix(value, "..."))))
		})
		got := tag
		if value != "" {
			got = strconv.Quote(value)
		}
		fe.Msg = "must be " + describe(goType) + ", got " + got
	}
	return fe
}

// describe names a Go type the way a YAML author thinks of it.
func describe(goType string) string {
	switch goType {
	case "time.Duration":
		return `a duration like "50ms" or "0s"`
	case "float64":
		return "a number"
	case "int":
		return "an integer"
	case "uint64":
		return "a non-negative integer"
	}
	return "a mapping" // one of the document's sections or rules
}

// pick returns the path of the one key that matches, or "" when none or
// several on the same level do: no path is better than a wrong one.
func pick(keys []keyPos, match func(keyPos) bool) string {
	best, depth, tie := "", -1, false
	for _, k := range keys {
		if !match(k) {
			continue
		}
		switch d := strings.Count(k.path, "."); {
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
	path, key          string
	keyLine, valueLine int
	valueTag, value    string // value is "" for collections
}

// keysOf lists every key of the document with its position, or nil when
// data does not parse.
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
				walk(v, path)
			}
		}
	}
	walk(&root, "")
	return keys
}

// oneLine escapes line breaks, which yaml.v3 copies from the file into its
// messages.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
