package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/mountinfo"
)

// mountsUnder lists the mounts strictly below dir, deepest first, so that
// unmounting them in order never trips over a mount stacked inside another.
func mountsUnder(dir string) ([]mountinfo.Mount, error) {
	all, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var under []mountinfo.Mount
	for _, m := range all {
		if isUnder(dir, m.Point) {
			under = append(under, m)
		}
	}
	sort.SliceStable(under, func(i, j int) bool {
		return strings.Count(under[i].Point, "/") > strings.Count(under[j].Point, "/")
	})
	return under, nil
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
func isOurs(m mountinfo.Mount) bool {
	return m.FSType == "tmpfs" || m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.")
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
		return fmt.Errorf("remove %s: %s is still mounted below it", root, ms[0].Point)
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
