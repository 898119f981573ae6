package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo, the parts this package uses.
type mountEntry struct {
	point  string // mount point, unescaped
	fstype string // "tmpfs", "fuse.nervefaults", ...
	source string
}

// mountsUnder lists the mounts strictly below dir, deepest first, so that
// unmounting them in order never trips over a mount stacked inside another.
func mountsUnder(dir string) ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	all, err := parseMountinfo(f)
	if err != nil {
		return nil, err
	}
	var under []mountEntry
	for _, m := range all {
		if isUnder(dir, m.point) {
			under = append(under, m)
		}
	}
	sort.SliceStable(under, func(i, j int) bool {
		return strings.Count(under[i].point, "/") > strings.Count(under[j].point, "/")
	})
	return under, nil
}

// parseMountinfo parses the format of proc(5) /proc/PID/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			return nil, fmt.Errorf("parse mountinfo line %q", line)
		}
		out = append(out, mountEntry{
			point:  unescapeMountinfo(fields[4]),
			fstype: tail[0],
			source: unescapeMountinfo(tail[1]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isUnder reports whether path lies strictly below dir; both are clean and
// absolute.
func isUnder(dir, path string) bool {
	if dir == "/" {
		return path != "/" && strings.HasPrefix(path, "/")
	}
	return strings.HasPrefix(path, dir+"/")
}

// isOurs reports whether a mount has a type this package creates.
func isOurs(m mountEntry) bool {
	return m.fstype == "tmpfs" || m.fstype == "fuse" || strings.HasPrefix(m.fstype, "fuse.")
}

// unmount unmounts point, lazily if it is busy. lazy reports whether the
// filesystem may live on until its last user lets go.
func unmount(point string) (lazy bool, err error) {
	err = unix.Unmount(point, 0)
	if errors.Is(err, unix.EBUSY) {
		lazy, err = true, unix.Unmount(point, unix.MNT_DETACH)
	}
	if err != nil {
		return lazy, fmt.Errorf("unmount %s: %w", point, err)
	}
	return lazy, nil
}

// removeTree removes root, a directory this package made, after checking
// that nothing is mounted below it: os.RemoveAll would descend into a mount
// and delete files that are not ours.
func removeTree(root string) error {
	ms, err := mountsUnder(root)
	if err != nil {
		return fmt.Errorf("remove %s: %w", root, err)
	}
	if len(ms) > 0 {
		return fmt.Errorf("remove %s: %s is still mounted below it", root, ms[0].point)
	}
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("remove %s: %w", root, err)
	}
	return nil
}

// scratchDir makes a fresh subdirectory of dir for one disk, creating dir
// when needed, and returns its canonical path.
func scratchDir(dir, prefix string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	root, err := os.MkdirTemp(dir, prefix)
	if err != nil {
		return "", err
	}
	if c, err := canonical(root); err == nil {
		root = c
	}
	return root, nil
}

// checkSize rejects sizes a loop device cannot use whole.
func checkSize(size int64) error {
	if size <= 0 || size%dioBlockSize != 0 {
		return fmt.Errorf("size %d: want a positive multiple of %d", size, dioBlockSize)
	}
	return nil
}

// mountPath joins a disk's scratch directory and the name of its mount point.
func mountPath(root string) string { return filepath.Join(root, "mnt") }
