package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/nervehq/nerve/manager"
)

func validLevel(l manager.Level) bool { return slices.Contains(manager.Levels, l) }

// key returns the key of w at level l ("" when w does not say).
func key(w manager.Where, l manager.Level) string {
	switch l {
	case manager.LevelCluster:
		return w.Cluster
	case manager.LevelEnvironment:
		return w.Environment
	case manager.LevelRegion:
		return w.Region
	case manager.LevelZone:
		return w.Zone
	case manager.LevelRack:
		return w.Rack
	case manager.LevelNode:
		return w.Node
	}
	return ""
}

// parseDocument reads one YAML document whose top level is a mapping (or
// empty). Nested mappings with keys that are not strings get string keys, so
// that they merge like the others.
func parseDocument(doc string) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil
		}
		return nil, fmt.Errorf("not valid YAML: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("top level is a %s, want a mapping", kind(v))
	}
	return m, nil
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	}
	return v
}

// merge lays src over dst: mappings merge key by key, recursively; anything
// else in src (scalars, lists, null) replaces what dst had.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if dm, ok := dst[k].(map[string]any); ok {
			if sm, ok := v.(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// Goals merges the goals documents that apply to w, broadest level first, a
// lower level overriding a higher one field by field. It returns the merged
// YAML ("" when no level has a document) and the documents it merged, by
// level. Levels whose key w leaves empty are skipped.
func (f *FSM) Goals(w manager.Where) (merged string, levels map[manager.Level]string, err error) {
	levels = map[manager.Level]string{}
	f.mu.RLock()
	for _, l := range manager.Levels {
		k := key(w, l)
		if k == "" {
			continue
		}
		if doc, ok := f.s.goals[goalKey{l, k}]; ok {
			levels[l] = doc
		}
	}
	f.mu.RUnlock()
	if len(levels) == 0 {
		return "", levels, nil
	}
	out := map[string]any{}
	for _, l := range manager.Levels {
		doc, ok := levels[l]
		if !ok {
			continue
		}
		m, err := parseDocument(doc)
		if err != nil {
			// SetGoals and Restore refuse such documents; this is a bug.
			return "", nil, fmt.Errorf("goals at level %s key %q: %w", l, key(w, l), err)
		}
		merge(out, m)
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		return "", nil, fmt.Errorf("encode merged goals: %w", err)
	}
	return string(b), levels, nil
}
