package flight

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Resolver names cgroup v2 ids (what bpf_get_current_cgroup_id returns: the
// cgroup directory's inode) as paths in the hierarchy, like
// "/system.slice/cassandra.service". It asks the kernel for the directory
// by its id (open_by_handle_at, which needs CAP_DAC_READ_SEARCH and works
// even after the process has gone), or else reads the process's
// /proc/<pid>/cgroup and checks the id. Answers are cached, unknown ones
// for a while only. Safe for concurrent use.
type Resolver struct {
	root string // the cgroup2 mount point
	proc string // procfs root
	now  func() time.Time

	mu    sync.Mutex // guards the fields below
	mount *os.File   // root, opened for open_by_handle_at; nil when unusable
	cache map[uint64]cgroupEntry
}

type cgroupEntry struct {
	path string    // "" when unknown
	at   time.Time // when an unknown was last tried
}

// Bounds of the Resolver's cache: entries, and how long an id that could
// not be named is not tried again.
const (
	maxCgroupCache = 4096
	retryUnknown   = 30 * time.Second
)

// FILEID_KERNFS: a kernfs node (a cgroup directory) by its id.
const fileidKernfs = 0xfe

// NewResolver returns a Resolver for the cgroup2 hierarchy mounted at root
// ("/sys/fs/cgroup", or ".../unified" on a hybrid host) and the procfs at
// proc ("" = /proc).
func NewResolver(root, proc string) *Resolver {
	if proc == "" {
		proc = "/proc"
	}
	r := &Resolver{root: filepath.Clean(root), proc: proc, now: time.Now, cache: map[uint64]cgroupEntry{}}
	if f, err := os.Open(r.root); err == nil {
		r.mount = f
	}
	return r
}

// Close lets go of the hierarchy's root.
func (r *Resolver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mount == nil {
		return nil
	}
	err := r.mount.Close()
	r.mount = nil
	return err
}

// Resolve names cgroup id of process pid; "" when it cannot.
func (r *Resolver) Resolve(pid int, id uint64) string {
	if id == 0 {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if e, ok := r.cache[id]; ok && (e.path != "" || now.Sub(e.at) < retryUnknown) {
		return e.path
	}
	p := r.byHandle(id)
	if p == "" {
		p = r.byProc(pid, id)
	}
	if len(r.cache) >= maxCgroupCache {
		clear(r.cache) // cgroups come and go; the live ones come back at once
	}
	r.cache[id] = cgroupEntry{path: p, at: now}
	return p
}

// byHandle opens the cgroup directory by its kernfs id and reads its path
// back. r.mu must be held.
func (r *Resolver) byHandle(id uint64) string {
	if r.mount == nil {
		return ""
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(int(r.mount.Fd()), unix.NewFileHandle(fileidKernfs, b[:]), unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	return r.rel(l)
}

// byProc reads the process's cgroup v2 path and keeps it if its directory
// has the id. r.mu must be held.
func (r *Resolver) byProc(pid int, id uint64) string {
	if pid <= 0 {
		return ""
	}
	f, err := os.Open(filepath.Join(r.proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, ok := strings.CutPrefix(sc.Text(), "0::")
		if !ok {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(r.root, p), &st) == nil && st.Ino == id {
			return r.rel(filepath.Join(r.root, p))
		}
	}
	return ""
}

// rel turns a path under the root into one relative to the hierarchy.
func (r *Resolver) rel(p string) string {
	if p == r.root {
		return "/"
	}
	if rest, ok := strings.CutPrefix(p, r.root+"/"); ok {
		return "/" + rest
	}
	return ""
}
