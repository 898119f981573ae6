package dashboards

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// selectors returns the vector selectors of a PromQL expression: each metric
// name with its {matchers} as written. It is a lexer, not a parser: enough to
// find metric names among function names, keywords, label lists, strings and
// durations, without importing Prometheus's own parser (Prometheus itself
// checks the syntax when the test runs the query). A selector without a
// metric name ({__name__=~"..."}) is an error: the test could not check what
// it matches.
func selectors(expr string) ([]string, error) {
	var out []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '{':
			return nil, fmt.Errorf("selector without a metric name at %d", i)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && strings.ContainsRune(" \t\n\r", rune(s[k])) {
				k++
			}
			next := byte(0)
			if k < len(s) {
				next = s[k]
			}
			lower := strings.ToLower(word)
			switch {
			case grouping[lower]:
				i = j
				if next == '(' {
					e := strings.IndexByte(s[k:], ')')
					if e < 0 {
						return nil, fmt.Errorf("unclosed %s( at %d", word, k)
					}
					i = k + e + 1
				}
			case keywords[lower] || next == '(':
				i = j // a keyword, an aggregation or a function
			default:
				sel := word
				i = j
				if next == '{' {
					e, err := closeBrace(s, k)
					if err != nil {
						return nil, err
					}
					sel, i = word+s[k:e], e
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out, nil
}

// metricName is the name of a selector that selectors returned.
func metricName(sel string) string {
	if i := strings.IndexByte(sel, '{'); i >= 0 {
		return sel[:i]
	}
	return sel
}

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

// closeBrace returns the index after the } that closes the { at i.
func closeBrace(s string, i int) (int, error) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '"', '\'', '`':
			e, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = e
		case '}':
			return j + 1, nil
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job="nerve-agent"} == 0`, []string{`up{job="nerve-agent"}`}},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{device=~"$d", inflight="0"}[5m])))`,
			[]string{`a_bucket{device=~"$d", inflight="0"}`}},
		{`sum(rate(a[1m])) by (le) / ignoring(x) group_left(y) b`, []string{"a", "b"}},
		{`1e9 * rate(a_total[5s]) / rate(b_total[5s])`, []string{"a_total", "b_total"}},
		{`x unless x offset 15m or increase(x{r="no action left"}[15m]) > 0`, []string{"x", "x", `x{r="no action left"}`}},
		{`device:nerve_x:p99_rate1m{instance="a}b"} > 0`, []string{`device:nerve_x:p99_rate1m{instance="a}b"}`}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`scalar(max(a)) - a`, []string{"a", "a"}},
		{`SUM BY (le) (a) # comment b`, []string{"a"}},
		{`topk(1, a{i=%q} > 0)`, []string{"a{i=%q}"}},
	} {
		got, err := selectors(tc.expr)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("selectors(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	if _, err := selectors(`{__name__=~"nerve_.*"}`); err == nil {
		t.Errorf("a selector without a metric name passed")
	}
}
