package targets

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	proc := t.TempDir()
	tests := []struct {
		name    string
		in      Options
		want    Options
		wantErr string
	}{
		{
			name: "zero refresh",
			in:   Options{Resolver: Resolver{CgroupRoot: "/cg", Proc: proc}},
			want: Options{Refresh: 2 * time.Second, Resolver: Resolver{CgroupRoot: "/cg", Proc: proc}},
		},
		{
			name: "given values kept",
			in:   Options{Refresh: time.Minute, Resolver: Resolver{CgroupRoot: "/cg", Proc: proc}},
			want: Options{Refresh: time.Minute, Resolver: Resolver{CgroupRoot: "/cg", Proc: proc}},
		},
		{
			name: "zero resolver",
			in:   Options{Refresh: time.Second},
			want: Options{Refresh: time.Second, Resolver: Default()},
		},
		{
			name:    "too many targets",
			in:      Options{Targets: []Target{{Name: "a", Process: "a"}, {Name: "b", Process: "b"}}},
			wantErr: "at most 1 targets",
		},
		{
			name:    "reserved name",
			in:      Options{Targets: []Target{{Name: Node, Process: "a"}}},
			wantErr: "reserved",
		},
	}
	for _, tt := range tests {
		got := tt.in
		_, err := got.Defaults(1)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: Defaults() error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Defaults() error = %v", tt.name, err)
			continue
		}
		if got.Refresh != tt.want.Refresh || got.Resolver != tt.want.Resolver {
			t.Errorf("%s: Defaults() left %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
