package drill

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/probes/targets"
)

// DefaultScratch is where drills make their devices and record what they
// started.
const DefaultScratch = "/var/lib/nerve/drill"

// Files under the scratch directory.
const (
	ownerFile   = "owner"   // "pid starttime" of the run that owns the directory
	procsFile   = "procs"   // one "pid starttime" line per process started
	cgroupsFile = "cgroups" // one absolute cgroup directory per line
	disksDir    = "disks"   // faults' scratch directory
)

// cgroupPrefix starts the name of every cgroup a drill makes; cleanup
// refuses to touch any other.
const cgroupPrefix = "nerve-drill-"

// ErrBusy means another drill, still alive, owns the scratch directory.
var ErrBusy = errors.New("another drill is running in this scratch directory")

// scratch is one run's scratch directory and its records.
type scratch struct {
	dir string
}

// openScratch cleans up after an earlier run in dir and claims it.
func openScratch(dir string) (*scratch, []string, error) {
	removed, err := CleanupLeftovers(dir)
	if err != nil {
		return nil, removed, err
	}
	if err := os.MkdirAll(filepath.Join(dir, disksDir), 0o700); err != nil {
		return nil, removed, fmt.Errorf("scratch: %w", err)
	}
	s := &scratch{dir: dir}
	me := os.Getpid()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(procLine(me, startTime(me))), 0o600); err != nil {
		return nil, removed, fmt.Errorf("scratch: %w", err)
	}
	return s, removed, nil
}

func (s *scratch) disks() string { return filepath.Join(s.dir, disksDir) }

// record appends line to one of the record files, synced, so that a run
// killed a moment later still leaves it for the next one.
func (s *scratch) record(file, line string) error {
	f, err := os.OpenFile(filepath.Join(s.dir, file), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record %s: %w", file, err)
	}
	_, err = f.WriteString(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record %s: %w", file, err)
	}
	return nil
}

// close removes everything under the scratch directory, the directory too.
func (s *scratch) close() error {
	_, err := CleanupLeftovers(s.dir)
	return err
}

// CleanupLeftovers removes what an earlier run that crashed or was killed
// left behind in the scratch directory dir: the processes it recorded (when
// pid and start time still match), the cgroups it recorded, then its loop
// devices and mounts, and dir itself. It returns what it removed. It fails
// with ErrBusy, touching nothing, while the run that owns dir is alive.
func CleanupLeftovers(dir string) ([]string, error) {
	if dir == "" || filepath.Clean(dir) == "/" {
		return nil, fmt.Errorf("drill scratch directory %q refused", dir)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if pid, st, ok := readOwner(dir); ok && pid != os.Getpid() && alive(pid, st) {
		return nil, fmt.Errorf("%s: pid %d: %w", dir, pid, ErrBusy)
	}
	var removed []string
	var errs []error
	// First: a FUSE server that died with its process may leave requests
	// that never complete, and processes waiting for them (the drill's
	// readers) that SIGKILL cannot end until they fail.
	if err := abortFUSE(dir); err != nil {
		errs = append(errs, err)
	}
	for _, p := range readLines(filepath.Join(dir, procsFile)) {
		pid, st, ok := parseProc(p)
		if !ok || pid == os.Getpid() || !alive(pid, st) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			removed = append(removed, "pid "+strconv.Itoa(pid))
		}
	}
	for _, cg := range readLines(filepath.Join(dir, cgroupsFile)) {
		ok, err := removeCgroup(cg)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			removed = append(removed, cg)
		}
	}
	r, err := faults.CleanupLeftovers(dir)
	removed = append(removed, r...)
	if err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// makeCgroup makes this run's cgroup and records it. It returns the path
// relative to the cgroup2 root (what a target names) and the directory.
func (s *scratch) makeCgroup() (rel, dir string, err error) {
	root, err := targets.CgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("cgroup: %w", err)
	}
	rel = "/" + cgroupPrefix + strconv.Itoa(os.Getpid())
	dir = filepath.Join(root, rel)
	// Recorded first: a run killed between the two leaves a record of a
	// cgroup that may not exist, which cleanup skips.
	if err := s.record(cgroupsFile, dir+"\n"); err != nil {
		return "", "", err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", "", fmt.Errorf("cgroup: %w", err)
	}
	return rel, dir, nil
}

// killCgroup kills every process in the cgroup dir and waits until it is
// empty.
//
// It does not write cgroup.kill: on Linux 6.18 a cgroup killed that way
// once kills every later child born into it with CLONE_INTO_CGROUP (the
// fork compares the kill sequence of the parent's cgroup with the
// target's), so the next drill's processes would die at birth. The drills'
// processes do not fork, so SIGKILL to each listed pid, repeated, empties it.
func killCgroup(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := readLines(filepath.Join(dir, "cgroup.procs"))
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes still in it after SIGKILL: %v", dir, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeCgroup kills what is in a cgroup a drill made and removes it. It
// reports false when there was nothing to remove.
func removeCgroup(dir string) (bool, error) {
	if !filepath.IsAbs(dir) || !strings.HasPrefix(filepath.Base(dir), cgroupPrefix) {
		return false, fmt.Errorf("cgroup %q: not one a drill makes: left alone", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return false, nil
	}
	if err := killCgroup(dir); err != nil {
		return false, err
	}
	var err error
	for range 100 { // the last exits can take a moment to be accounted
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, fmt.Errorf("remove cgroup: %w", err)
}

func readOwner(dir string) (pid int, st uint64, ok bool) {
	l := readLines(filepath.Join(dir, ownerFile))
	if len(l) == 0 {
		return 0, 0, false
	}
	return parseProc(l[0])
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func procLine(pid int, st uint64) string { return fmt.Sprintf("%d %d\n", pid, st) }

func parseProc(l string) (pid int, st uint64, ok bool) {
	f := strings.Fields(l)
	if len(f) != 2 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	st, err2 := strconv.ParseUint(f[1], 10, 64)
	return pid, st, err1 == nil && err2 == nil && pid > 0
}

// alive says whether pid runs and is the process that started at st, not
// a reuse of its number.
func alive(pid int, st uint64) bool {
	got := startTime(pid)
	return got != 0 && got == st
}

// startTime is the process's start time in clock ticks since boot
// (/proc/<pid>/stat field 22), or 0 when there is no such process.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// fusectl is where the kernel lists FUSE connections.
const fusectl = "/sys/fs/fuse/connections"

// abortFUSE aborts the connection of every FUSE mount under dir.
func abortFUSE(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var conns []string
	for _, l := range readLines("/proc/self/mountinfo") {
		f := strings.Fields(l)
		sep := slices.Index(f, "-")
		if sep < 0 || sep+1 >= len(f) || len(f) < 5 || !strings.HasPrefix(f[sep+1], "fuse") {
			continue
		}
		if p := f[4]; p != abs && !strings.HasPrefix(p, abs+"/") {
			continue
		}
		if _, minor, ok := strings.Cut(f[2], ":"); ok {
			conns = append(conns, minor) // the connection is named after the device minor
		}
	}
	if len(conns) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(fusectl, "..")); err == nil {
		if _, err := os.Stat(filepath.Join(fusectl, conns[0])); err != nil {
			if err := syscall.Mount("fusectl", fusectl, "fusectl", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("mount fusectl: %w", err)
			}
		}
	}
	var errs []error
	for _, c := range conns {
		err := os.WriteFile(filepath.Join(fusectl, c, "abort"), []byte("1"), 0o200)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("abort FUSE connection %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}
