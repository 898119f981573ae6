package targets

import (
	"github.com/nervehq/nerve/internal/mountinfo"

	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		t    Target
		want string // "" = valid
	}{
		{Target{Name: "cassandra", SystemdUnit: "cassandra.service"}, ""},
		{Target{Name: "db", Cgroup: "/system.slice/db.service"}, ""},
		{Target{Name: "jvm", Process: "java"}, ""},
		{Target{Name: "", Process: "java"}, "name"},
		{Target{Name: "9lives", Process: "java"}, "name"},
		{Target{Name: "x"}, "exactly one"},
		{Target{Name: "x", Process: "java", Cgroup: "/a"}, "exactly one"},
		{Target{Name: "x", Cgroup: "/a/../../etc"}, "cgroup"},
		{Target{Name: "x", SystemdUnit: "a/b.service"}, "systemd_unit"},
		{Target{Name: "x", Process: "/usr/bin/java"}, "process"},
	}
	for _, tt := range tests {
		err := tt.t.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.t, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one naming %q", tt.t, err, tt.want)
		}
	}
	dup := []Target{{Name: "a", Process: "x"}, {Name: "a", Process: "y"}}
	if err := ValidateAll(dup, 8); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := ValidateAll(dup, 1); err == nil || !strings.Contains(err.Error(), "at most 1") {
		t.Errorf("too many: %v", err)
	}
}

func TestCgroupV2Root(t *testing.T) {
	hybrid := "30 1 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro\n40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	unified := "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
	for in, want := range map[string]string{hybrid: "/sys/fs/cgroup/unified", unified: "/sys/fs/cgroup"} {
		ms, err := mountinfo.Parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cgroupV2Root(ms)
		if err != nil || got != want {
			t.Errorf("cgroupV2Root = %q, %v, want %q", got, err, want)
		}
	}
	if _, err := cgroupV2Root([]mountinfo.Mount{{Point: "/", FSType: "ext4"}}); err == nil {
		t.Error("no error without a cgroup2 mount")
	}
	if _, err := CgroupV2Root("/proc/self/mountinfo"); err != nil {
		t.Errorf("this machine: %v", err)
	}
}

func TestResolveFakeTree(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"system.slice/cassandra.service/sub", "system.slice/other.service", "user.slice"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := Resolver{CgroupRoot: root, Proc: "/proc"}
	ts := []Target{
		{Name: "cass", SystemdUnit: "cassandra.service"},
		{Name: "other", Cgroup: "/system.slice/other.service"},
		{Name: "gone", Cgroup: "/system.slice/gone.service"},
		{Name: "me", Process: filepath.Base(os.Args[0])},
	}
	s, err := r.Resolve(ts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Found, []bool{true, true, false, true}; !equal(got, want) {
		t.Errorf("Found = %v, want %v", got, want)
	}
	id, _ := CgroupID(filepath.Join(root, "system.slice/cassandra.service/sub"))
	if idx, ok := s.Cgroups[id]; !ok || idx != 0 {
		t.Errorf("child cgroup of the unit: index %d, %v; want 0", idx, ok)
	}
	if idx, ok := s.Tgids[uint32(os.Getpid())]; !ok || idx != 3 {
		t.Errorf("this process: index %d, %v; want 3", idx, ok)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
