package hsperf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// maxFileSize bounds what Read will load. The JVM's file is
// -XX:PerfDataMemorySize, 32 KiB by default; nobody runs with megabytes.
const maxFileSize = 16 << 20

// Re-reads on ErrIncomplete or ErrCorrupt: the JVM fills in a new entry in
// microseconds, so a torn read is over by the next attempt.
const (
	readAttempts = 3
	readBackoff  = 2 * time.Millisecond
)

// Dir returns the hsperfdata directory of a user. root is "/" for a JVM in
// nerve's mount namespace, or "/proc/<pid>/root" for one in another (a
// container). HotSpot always uses /tmp on Linux, whatever java.io.tmpdir or
// TMPDIR say.
func Dir(root, user string) string {
	return filepath.Join(root, "tmp", "hsperfdata_"+user)
}

// HsperfPath returns the path of a JVM's hsperfdata file. user is the name
// of the JVM's effective user as the JVM sees it (its own /etc/passwd), and
// pid is its pid in its own pid namespace (the last NSpid in
// /proc/<pid>/status), which is the host pid only outside containers.
func HsperfPath(root, user string, pid int) string {
	return filepath.Join(Dir(root, user), strconv.Itoa(pid))
}

// Read reads and parses the hsperfdata file at path. It does not follow a
// symlink in the last path element, and refuses anything that is not a
// regular file. On a torn read it reads again a few times before it returns
// the error.
func Read(path string) (*Snapshot, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("hsperf: %w", err)
	}
	defer f.Close()
	return readFile(f)
}

// ReadInRoot reads the hsperfdata file of a JVM (see HsperfPath for root,
// user and pid), resolving every symlink on the way inside root, so that a
// container cannot point nerve at a file of the host.
func ReadInRoot(root, user string, pid int) (*Snapshot, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("hsperf: %w", err)
	}
	defer r.Close()
	rel := filepath.Join("tmp", "hsperfdata_"+user, strconv.Itoa(pid))
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("hsperf: %w", err)
	}
	defer f.Close()
	return readFile(f)
}

func readFile(f *os.File) (*Snapshot, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hsperf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("hsperf: %s is not a regular file (%v)", f.Name(), st.Mode().Type())
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("hsperf: %s is %d bytes, more than the %d an hsperfdata file can be", f.Name(), st.Size(), maxFileSize)
	}
	buf := make([]byte, st.Size())
	for attempt := 1; ; attempt++ {
		// The file's size is fixed while the JVM runs; a short read means
		// it was truncated under us, which Parse reports.
		n, err := f.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("hsperf: read %s: %w", f.Name(), err)
		}
		s, err := Parse(buf[:n])
		if err == nil {
			return s, nil
		}
		if attempt == readAttempts || errors.Is(err, ErrVersion) {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		time.Sleep(readBackoff)
	}
}
