package docgen

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// module is the import path of the source tree the doc comments are read
// from; only its packages are parsed.
const module = "github.com/nervehq/nerve"

// source reads the doc comments of this module's types, fields and
// constants from the Go files under root, so that the reference says what
// the code's own comments say.
type source struct {
	root string
	pkgs map[string]*pkgDocs // by import path
}

func newSource(root string) *source {
	return &source{root: root, pkgs: map[string]*pkgDocs{}}
}

// pkgDocs is what one package's comments say.
type pkgDocs struct {
	types map[string]*typeDocs // by type name
}

// typeDocs is one type's doc comment, its fields' comments and, for a
// type with constants, their values and comments.
type typeDocs struct {
	doc string
	// fields by Go name; the fields of an anonymous struct type are under
	// "Outer.Inner".
	fields map[string]string
	// order is the Go names of fields, by struct, in declaration order.
	order map[string][]string // "" for the type's own struct, "Outer" for an anonymous one
	enum  []enumValue
}

// enumValue is a constant of a type: its value as written and its comment.
type enumValue struct {
	value, doc string
}

// pkg parses the package at importPath, once.
func (s *source) pkg(importPath string) (*pkgDocs, error) {
	if p, ok := s.pkgs[importPath]; ok {
		return p, nil
	}
	rel, ok := strings.CutPrefix(importPath, module)
	if !ok {
		return nil, fmt.Errorf("package %s is not in %s", importPath, module)
	}
	dir := filepath.Join(s.root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read the source of %s (is --source the nerve tree?): %w", importPath, err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files for %s in %s", importPath, dir)
	}
	dp, err := doc.NewFromFiles(fset, files, importPath, doc.AllDecls|doc.PreserveAST)
	if err != nil {
		return nil, err
	}
	p := &pkgDocs{types: map[string]*typeDocs{}}
	for _, t := range dp.Types {
		td := &typeDocs{doc: goDocText(t.Doc), fields: map[string]string{}, order: map[string][]string{}}
		for _, spec := range t.Decl.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok || ts.Name.Name != t.Name {
				continue
			}
			if st, ok := ts.Type.(*ast.StructType); ok {
				td.addFields("", st)
			}
		}
		for _, c := range t.Consts {
			td.addConsts(c.Decl, t.Name)
		}
		p.types[t.Name] = td
	}
	s.pkgs[importPath] = p
	return p, nil
}

// addFields records the comments of st's fields under prefix, those of an
// anonymous struct field's fields under prefix+"Name.".
func (td *typeDocs) addFields(prefix string, st *ast.StructType) {
	scope := strings.TrimSuffix(prefix, ".")
	for _, f := range st.Fields.List {
		text := joinDoc(goDocText(f.Doc.Text()), goDocText(f.Comment.Text()))
		names := f.Names
		if len(names) == 0 { // embedded: named after its type
			if id := embeddedName(f.Type); id != "" {
				names = []*ast.Ident{{Name: id}}
			}
		}
		for _, n := range names {
			td.fields[prefix+n.Name] = text
			td.order[scope] = append(td.order[scope], n.Name)
			if inner, ok := f.Type.(*ast.StructType); ok {
				td.addFields(prefix+n.Name+".", inner)
			}
		}
	}
}

// embeddedName is the field name of an embedded field of type expr.
func embeddedName(expr ast.Expr) string {
	switch e := expr.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return embeddedName(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.IndexExpr: // Rule[time.Duration]
		return embeddedName(e.X)
	case *ast.IndexListExpr:
		return embeddedName(e.X)
	}
	return ""
}

// addConsts records the constants of decl that have an explicit value and
// are of type typeName.
func (td *typeDocs) addConsts(decl *ast.GenDecl, typeName string) {
	for _, spec := range decl.Specs {
		vs, ok := spec.(*ast.ValueSpec)
		if !ok || len(vs.Values) != len(vs.Names) {
			continue
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
			continue
		}
		for _, v := range vs.Values {
			lit, ok := v.(*ast.BasicLit)
			if !ok {
				continue
			}
			val := lit.Value
			if lit.Kind == token.STRING {
				if u, err := strconv.Unquote(val); err == nil {
					val = u
				}
			}
			td.enum = append(td.enum, enumValue{value: val, doc: joinDoc(goDocText(vs.Doc.Text()), goDocText(vs.Comment.Text()))})
		}
	}
}

// typeOf finds the docs of the named type t, or nil for a type outside the
// module or without a name.
func (s *source) typeOf(t reflect.Type) (*typeDocs, error) {
	if t.Name() == "" || !strings.HasPrefix(t.PkgPath(), module) {
		return nil, nil
	}
	p, err := s.pkg(t.PkgPath())
	if err != nil {
		return nil, err
	}
	name, _, _ := strings.Cut(t.Name(), "[") // Rule[time.Duration] is declared as Rule
	return p.types[name], nil
}

// fieldDoc is the comment of the field goName of the struct at scope
// ("" or an anonymous struct's "Outer") in td. A field without one of its
// own takes that of an earlier field of the same struct that names it, as
// in "MaxDevices and MaxRequests size the probe's maps".
func (td *typeDocs) fieldDoc(scope, goName string) string {
	if td == nil {
		return ""
	}
	prefix := ""
	if scope != "" {
		prefix = scope + "."
	}
	if d := td.fields[prefix+goName]; d != "" {
		return d
	}
	word := regexp.MustCompile(`\b` + regexp.QuoteMeta(goName) + `\b`)
	for _, other := range td.order[scope] {
		if other == goName {
			break
		}
		d := td.fields[prefix+other]
		if m := leadingNames.FindStringSubmatch(d); m != nil && word.MatchString(m[1]) {
			return d
		}
	}
	return ""
}

// leadingNames matches a comment that starts with the fields it is about:
// "CertFile and KeyFile are ...".
var leadingNames = regexp.MustCompile(`^((?:\w+, )*\w+ and \w+)\b`)

// leadingName replaces the name a type's doc comment starts with ("Web is
// where ...") with key, the name the reader knows it by.
func leadingName(doc, name, key string) string {
	if rest, ok := strings.CutPrefix(doc, name+" "); ok {
		return "`" + key + "` " + rest
	}
	return doc
}

// sentence makes a comment read as a sentence: a first word in lower case
// is capitalized (unless it is an identifier or a value being listed, as
// in "observe: ..." or "debug, info"), and a period ends it.
func sentence(md string) string {
	if md == "" || strings.HasPrefix(md, "```") {
		return md
	}
	first, _, _ := strings.Cut(md, " ")
	if r := first[0]; r >= 'a' && r <= 'z' && !strings.ContainsAny(first, "_:,/") {
		md = strings.ToUpper(md[:1]) + md[1:]
	}
	if !strings.HasSuffix(md, "```") && !strings.ContainsAny(md[len(md)-1:], ".!?:") {
		md += "."
	}
	return md
}

// similar says whether most words of a are in b: a says nothing b does
// not, and a reference that printed both would repeat itself.
func similar(a, b string) bool {
	wa, wb := words(a), words(b)
	if len(wa) == 0 {
		return true
	}
	n := 0
	for w := range wa {
		if wb[w] {
			n++
		}
	}
	return n*5 >= len(wa)*4
}

func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) {
		out[w] = true
	}
	return out
}

// goDocText turns a Go doc comment into markdown: lines join into
// paragraphs, indented lines become code blocks.
func goDocText(text string) string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		lines = append(lines, strings.ReplaceAll(l, "\t", "    "))
	}
	return textToMarkdown(lines)
}

// joinDoc joins a field's doc comment and its line comment.
func joinDoc(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}

// renameGo replaces the Go names in a doc comment with what a reader of the
// document sees: each key of names (a Go field or type name, as a whole
// word) becomes its value in a code span.
func renameGo(text string, names map[string]string) string {
	if text == "" || len(names) == 0 {
		return text
	}
	var alts []string
	for goName := range names {
		alts = append(alts, regexp.QuoteMeta(goName))
	}
	// Longest first, so that no name matches inside a longer one.
	slices.SortFunc(alts, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	re := regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`)
	return re.ReplaceAllStringFunc(text, func(m string) string { return "`" + names[m] + "`" })
}
