package fsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/nervehq/nerve/manager"
)

func TestGoalsMerge(t *testing.T) {
	docs := []manager.SetGoals{
		{Level: manager.LevelCluster, Key: "c1", Document: "gc:\n  max_pause: 5s\n  threads: 4\nactions: [restart]\nowner: dba\n"},
		{Level: manager.LevelEnvironment, Key: "prod", Document: "gc:\n  max_pause: 2s\nowner: sre\n"},
		{Level: manager.LevelRegion, Key: "eu", Document: "# nothing yet\n"},
		{Level: manager.LevelZone, Key: "eu-1a", Document: "disk:\n  p99: 20ms\n"},
		{Level: manager.LevelRack, Key: "r1", Document: "actions: [throttle]\ndisk: {p99: 50ms, util: 0.9}\n"},
		{Level: manager.LevelNode, Key: "n1", Document: "gc: {threads: 8}\nowner: null\n1: one\n"},
		{Level: manager.LevelNode, Key: "n2", Document: "gc: off\n"},
	}
	h := newHarness(t)
	for _, d := range docs {
		if r := h.apply(manager.OpSetGoals, 0, &d); r.Err != nil || r.Events[0].Kind != "goals" {
			t.Fatalf("set %s %s: %v %v", d.Level, d.Key, r.Err, r.Events)
		}
	}
	tests := []struct {
		name   string
		where  manager.Where
		want   string
		levels int
	}{
		{"nothing", manager.Where{Cluster: "other"}, "", 0},
		{"cluster only", manager.Where{Cluster: "c1"},
			"actions:\n    - restart\ngc:\n    max_pause: 5s\n    threads: 4\nowner: dba\n", 1},
		{"every level, field by field", manager.Where{Cluster: "c1", Environment: "prod", Region: "eu", Zone: "eu-1a", Rack: "r1", Node: "n1"},
			"\"1\": one\nactions:\n    - throttle\ndisk:\n    p99: 50ms\n    util: 0.9\ngc:\n    max_pause: 2s\n    threads: 8\nowner: null\n", 6},
		{"skipped levels", manager.Where{Cluster: "c1", Zone: "eu-1a"},
			"actions:\n    - restart\ndisk:\n    p99: 20ms\ngc:\n    max_pause: 5s\n    threads: 4\nowner: dba\n", 2},
		{"a scalar replaces a mapping", manager.Where{Cluster: "c1", Node: "n2"},
			"actions:\n    - restart\ngc: \"off\"\nowner: dba\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, levels, err := h.f.Goals(tt.where)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("merged:\n%s\nwant:\n%s", got, tt.want)
			}
			if len(levels) != tt.levels {
				t.Errorf("levels %v, want %d of them", levels, tt.levels)
			}
		})
	}
	// Deleting a level's document removes it from the merge.
	h.apply(manager.OpSetGoals, 0, &manager.SetGoals{Level: manager.LevelNode, Key: "n2"})
	if got, _, _ := h.f.Goals(manager.Where{Cluster: "c1", Node: "n2"}); strings.Contains(got, "off") {
		t.Fatalf("deleted document still merged:\n%s", got)
	}
}

func TestSetGoalsRefuses(t *testing.T) {
	tests := []struct {
		name  string
		goals manager.SetGoals
		want  []string // in the error
	}{
		{"unknown level", manager.SetGoals{Level: "continent", Key: "eu", Document: "a: 1"}, []string{"continent", "eu"}},
		{"no key", manager.SetGoals{Level: manager.LevelRack, Document: "a: 1"}, []string{"rack"}},
		{"not YAML", manager.SetGoals{Level: manager.LevelRack, Key: "r1", Document: "a: [1, 2\n"}, []string{"rack", "r1", "YAML"}},
		{"a list", manager.SetGoals{Level: manager.LevelNode, Key: "n1", Document: "- a\n- b\n"}, []string{"node", "n1", "list"}},
		{"a scalar", manager.SetGoals{Level: manager.LevelNode, Key: "n1", Document: "hello"}, []string{"node", "n1", "mapping"}},
		{"two documents", manager.SetGoals{Level: manager.LevelZone, Key: "z", Document: "a: 1\n---\nb: 2\n"}, []string{"zone", "more than one"}},
		{"too big", manager.SetGoals{Level: manager.LevelZone, Key: "z", Document: "a: " + strings.Repeat("x", MaxDocumentBytes)}, []string{"zone", "bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.apply(manager.OpSetGoals, 0, &tt.goals)
			if !errors.Is(r.Err, manager.ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", r.Err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Err.Error(), w) {
					t.Errorf("error %q does not name %q", r.Err, w)
				}
			}
			if len(r.Events) != 0 || len(h.f.History(0, 0)) != 0 {
				t.Errorf("refused goals appended events")
			}
		})
	}
}
