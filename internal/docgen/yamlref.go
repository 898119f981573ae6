package docgen

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nervehq/nerve/internal/yamlfield"
)

// yamlKey is one key of a YAML document that decodes into a Go struct.
type yamlKey struct {
	path    string // probes.blockio.buckets_per_octave; targets[].name for a key of a list's items
	typ     string // integer, duration, list of strings, mapping, ...
	def     string // the default, as YAML; "" for a key of a list's items
	desc    string // markdown
	section bool   // a mapping whose keys follow
}

// yamlDoc is a YAML document's reference: its keys, and the comment at the
// top of its default file.
type yamlDoc struct {
	intro string
	keys  []yamlKey
}

// yamlReference lists every key of the document that decodes into
// defaults (a pointer to a struct holding the built-in defaults),
// describing each from the doc comments of its Go field (or, for a
// mapping, of its type) and from the comments of defaultYAML, the file
// the defaults were decoded from. A key that neither describes is an
// error: the reference must not silently lose a description.
func yamlReference(src *source, defaults any, defaultYAML []byte) (*yamlDoc, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(defaultYAML, &root); err != nil {
		return nil, fmt.Errorf("parse the default file: %w", err)
	}
	w := &yamlWalker{src: src, comments: map[string]string{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		w.collectComments("", root.Content[0])
	}
	v := reflect.ValueOf(defaults).Elem()
	td, err := src.typeOf(v.Type())
	if err != nil {
		return nil, err
	}
	if err := w.walk("", v, true, td, ""); err != nil {
		return nil, err
	}
	if len(w.missing) > 0 {
		return nil, fmt.Errorf("no description for %s: add a doc comment to the Go field or a comment to the default file", strings.Join(w.missing, ", "))
	}
	return &yamlDoc{intro: commentText(root.HeadComment), keys: w.keys}, nil
}

type yamlWalker struct {
	src      *source
	comments map[string]string // by key path, markdown
	keys     []yamlKey
	missing  []string
}

// collectComments records, by key path, the comments around each key of
// the mapping n: those above it and those after its value on its line.
func (w *yamlWalker) collectComments(prefix string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := joinPath(prefix, k.Value)
		w.comments[path] = joinDoc(sentence(commentText(k.HeadComment)), sentence(commentText(k.LineComment)), sentence(commentText(v.LineComment)))
		w.collectComments(path, v)
	}
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// walk adds the keys of the struct v (of a type td describes; its fields
// at scope, "" or an anonymous struct's name) under prefix. hasDefault is
// false under a list, whose items have no defaults.
func (w *yamlWalker) walk(prefix string, v reflect.Value, hasDefault bool, td *typeDocs, scope string) error {
	t := v.Type()
	names := goNames(t)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			itd, err := w.src.typeOf(f.Type)
			if err != nil {
				return err
			}
			if err := w.walk(prefix, v.Field(i), hasDefault, itd, ""); err != nil {
				return err
			}
			continue
		}
		key := yamlfield.Name(f)
		path := joinPath(prefix, key)
		fv := v.Field(i)
		ft := f.Type
		ftd, err := w.src.typeOf(ft)
		if err != nil {
			return err
		}
		goDoc := sentence(renameGo(td.fieldDoc(scope, f.Name), names))
		k := yamlKey{path: path, typ: yamlType(ft)}
		if hasDefault {
			k.def = yamlValue(fv)
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != timeType:
			k.section = true
			if goDoc == "" && ftd != nil {
				goDoc = leadingName(ftd.doc, ft.Name(), key)
			}
			k.def = ""
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			k.section = true
			if goDoc == "" {
				if etd, err := w.src.typeOf(ft.Elem()); err == nil && etd != nil {
					goDoc = etd.doc
				}
			}
		}
		yc := w.comments[path]
		switch {
		case goDoc != "" && yc != "" && similar(yc, goDoc):
			yc = ""
		case goDoc != "" && yc != "" && similar(goDoc, yc):
			goDoc = ""
		}
		k.desc = joinDoc(goDoc, yc)
		if k.desc == "" {
			w.missing = append(w.missing, path)
		}
		w.keys = append(w.keys, k)
		switch {
		case k.section && ft.Kind() == reflect.Struct && ft.Name() == "":
			// An anonymous struct: its fields' comments are in td.
			inner := f.Name
			if scope != "" {
				inner = scope + "." + f.Name
			}
			err = w.walk(path, fv, hasDefault, td, inner)
		case k.section && ft.Kind() == reflect.Struct:
			err = w.walk(path, fv, hasDefault, ftd, "")
		case k.section: // a list of mappings
			var etd *typeDocs
			if etd, err = w.src.typeOf(ft.Elem()); err == nil {
				err = w.walk(path+"[]", reflect.New(ft.Elem()).Elem(), false, etd, "")
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// goNames maps the Go names of t's fields (and of its inlined structs'
// fields) to their YAML keys, and t's own name to nothing: a doc comment
// that names them is rewritten to the keys a YAML author knows.
func goNames(t reflect.Type) map[string]string {
	names := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
			maps.Copy(names, goNames(f.Type))
			continue
		}
		if key := yamlfield.Name(f); key != "" && key != f.Name {
			names[f.Name] = key
		}
	}
	return names
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// yamlType names t as a YAML author thinks of it.
func yamlType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list of mappings"
		}
		return "list of " + plural(yamlType(t.Elem()))
	case t.Kind() == reflect.Map:
		return "mapping of " + yamlType(t.Key()) + " to " + yamlType(t.Elem())
	case t.Kind() == reflect.Struct:
		return "mapping"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.String:
		return "string"
	}
	return t.String()
}

func plural(s string) string {
	if strings.HasSuffix(s, "s") {
		return s
	}
	return s + "s"
}

// yamlValue writes v as YAML in flow style, with durations as written in a
// file (30s, 10m) and map keys sorted.
func yamlValue(v reflect.Value) string {
	t := v.Type()
	switch {
	case t == durationType:
		return shortDuration(time.Duration(v.Int()))
	case t.Kind() == reflect.String:
		s := v.String()
		if s == "" || strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`") || strings.TrimSpace(s) != s {
			return strconv.Quote(s)
		}
		return s
	case t.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case t.Kind() == reflect.Slice:
		var items []string
		for i := range v.Len() {
			items = append(items, yamlValue(v.Index(i)))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case t.Kind() == reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return compareKeys(a, b) })
		var items []string
		for _, k := range keys {
			items = append(items, yamlValue(k)+": "+yamlValue(v.MapIndex(k)))
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

func compareKeys(a, b reflect.Value) int {
	switch a.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(a.Int() - b.Int())
	}
	return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
}

// shortDuration writes d as a person writes it: 10m, not 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// commentText turns a YAML comment into markdown: the "# " goes, lines
// join into paragraphs, and runs of indented lines become code blocks.
func commentText(c string) string {
	if c == "" {
		return ""
	}
	var lines []string
	for l := range strings.SplitSeq(c, "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "#")
		lines = append(lines, strings.TrimPrefix(l, " "))
	}
	return textToMarkdown(lines)
}

// textToMarkdown joins lines into paragraphs (split at blank lines), and
// writes lines indented by two spaces or more as code blocks.
func textToMarkdown(lines []string) string {
	var out []string
	var para, code []string
	flush := func() {
		if len(para) > 0 {
			out = append(out, strings.Join(para, " "))
			para = nil
		}
		if len(code) > 0 {
			out = append(out, "```\n"+strings.Join(dedent(code), "\n")+"\n```")
			code = nil
		}
	}
	for _, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case strings.HasPrefix(l, "  "):
			if len(para) > 0 {
				out = append(out, strings.Join(para, " "))
				para = nil
			}
			code = append(code, l)
		default:
			if len(code) > 0 {
				flush()
			}
			para = append(para, strings.TrimSpace(l))
		}
	}
	flush()
	return strings.Join(out, "\n\n")
}

func dedent(lines []string) []string {
	indent := -1
	for _, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimRight(l[indent:], " ")
	}
	return out
}

// writeYAMLDoc writes the keys of d, each a heading with its type, default
// and description.
func writeYAMLDoc(w io.Writer, d *yamlDoc) {
	for _, k := range d.keys {
		depth := strings.Count(strings.ReplaceAll(k.path, "[]", ""), ".")
		level := "###"
		if depth == 0 {
			level = "##"
		}
		fmt.Fprintf(w, "%s `%s`\n\n", level, k.path)
		switch {
		case k.def != "":
			fmt.Fprintf(w, "*%s*, default `%s`\n\n", k.typ, k.def)
		default:
			fmt.Fprintf(w, "*%s*\n\n", k.typ)
		}
		fmt.Fprintf(w, "%s\n\n", k.desc)
	}
}
