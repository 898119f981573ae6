package mountinfo

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 22 0:50 / /tmp/with\040space rw master:1 shared:2 - fuse.nervefaults nerve\134slow rw
`
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Point: "/sys", FSType: "sysfs", Source: "sysfs"},
		{Point: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2"},
		{Point: "/tmp/with space", FSType: "fuse.nervefaults", Source: `nerve\slow`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mounts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"garbage\n", "1 2 3 4 5 6\n", "1 2 0:1 / /x rw - \n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) error = %v, want one naming line 1", bad, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`a\040b`: "a b", `x\134y`: `x\y`, `tab\011`: "tab\t", `no`: "no", `bad\09`: `bad\09`, `end\04`: `end\04`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadSelf(t *testing.T) {
	ms, err := Read("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no mounts in /proc/self/mountinfo")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add("x - y\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := Parse(strings.NewReader(s))
		if err == nil {
			for _, m := range ms {
				if m.FSType == "" {
					t.Fatalf("mount without a type: %+v", m)
				}
			}
		}
	})
}
