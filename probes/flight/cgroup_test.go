package flight

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/targets"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Without a cgroup filesystem (a plain directory stands in for it), the
// resolver falls back on /proc/<pid>/cgroup and checks the id.
func TestResolverByProc(t *testing.T) {
	root, proc := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "system.slice", "db.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(proc, "7"), 0o755)
	os.WriteFile(filepath.Join(proc, "7", "cgroup"), []byte("1:name=systemd:/x\n0::/system.slice/db.service\n"), 0o644)
	id := inode(t, filepath.Join(root, "system.slice", "db.service"))

	c := &clock{now: t0}
	r := NewResolver(root, proc)
	r.now = c.Now
	defer r.Close()
	if got := r.Resolve(7, id); got != "/system.slice/db.service" {
		t.Errorf("Resolve(7, %d) = %q, want /system.slice/db.service", id, got)
	}
	if got := r.Resolve(8, id); got != "/system.slice/db.service" {
		t.Errorf("cached: Resolve(8, %d) = %q", id, got)
	}
	if got := r.Resolve(7, id+1000); got != "" {
		t.Errorf("a wrong id resolved to %q", got)
	}
	// An unknown id is not tried again for a while, then it is.
	os.WriteFile(filepath.Join(proc, "7", "cgroup"), []byte("0::/\n"), 0o644)
	rootID := inode(t, root)
	if got := r.Resolve(7, rootID); got != "/" {
		t.Errorf("root cgroup = %q, want /", got)
	}
	if r.Resolve(0, 0) != "" {
		t.Error("id 0 resolved")
	}
	c.set(t0.Add(retryUnknown + time.Second))
	if got := r.Resolve(7, id+1000); got != "" {
		t.Errorf("a wrong id resolved to %q on retry", got)
	}
}

// On the real hierarchy the kernel names a cgroup by its id even with no
// process in it.
func TestResolverByHandle(t *testing.T) {
	privtest.Root(t)
	rel, dir := privtest.Cgroup(t)
	root, err := targets.CgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(root, "")
	defer r.Close()
	id := inode(t, dir)
	if got := r.Resolve(0, id); got != rel {
		t.Errorf("Resolve(no pid, %d) = %q, want %q", id, got, rel)
	}
	if got := r.Resolve(os.Getpid(), id+1<<40); got != "" {
		t.Errorf("a made-up id resolved to %q", got)
	}
}
