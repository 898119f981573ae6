package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// CleanupLeftovers undoes what a crashed earlier run left in the scratch
// directory dir: it detaches the loop devices whose backing file lies under
// dir (after setting their scheduler and queue depth back to the loop
// driver's defaults), lazily unmounts the FUSE and tmpfs mounts under dir,
// and removes dir. It returns what it removed: device paths, mount points,
// and dir. A dir that does not exist is not an error.
//
// The loop devices go first, as they keep the filesystems below them in use.
// A FUSE filesystem whose server is still alive (in this process or another)
// is fine: its server ends once the mount is gone. Mounts of other types are
// left alone, and then dir is not removed, so that no file is deleted
// through a mount this package did not make. Call it before making disks in
// dir, not while disks made in dir are in use.
func CleanupLeftovers(dir string) ([]string, error) {
	if dir == "" {
		return nil, errors.New("cleanup leftovers: empty dir")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cleanup leftovers in %s: %w", dir, err)
	}
	if c, err := filepath.EvalSymlinks(abs); err == nil {
		abs = c
	}
	if abs == "/" {
		return nil, errors.New("cleanup leftovers: refusing to clean up /")
	}

	var removed []string
	var errs []error

	devs, err := loopDevices()
	if err != nil {
		return nil, fmt.Errorf("cleanup leftovers in %s: list loop devices: %w", abs, err)
	}
	names := make([]string, 0, len(devs))
	for name, backing := range devs {
		if isUnder(abs, backing) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// As Close does for its own: queue settings back to the
		// defaults, then detach.
		l := &Loop{name: name, backing: devs[name]}
		if err := l.Close(); err != nil {
			errs = append(errs, err)
			if !l.detached {
				continue
			}
		}
		removed = append(removed, "/dev/"+name)
	}

	ms, err := mountsUnder(abs)
	if err != nil {
		return removed, fmt.Errorf("cleanup leftovers in %s: %w", abs, err)
	}
	for _, m := range ms {
		if !isOurs(m) {
			errs = append(errs, fmt.Errorf("%s is a %s mount, not one this package makes: left alone", m.Point, m.FSType))
			continue
		}
		// Lazily: a FUSE filesystem whose server died answers nothing, and
		// a busy one should still go away from under dir.
		if err := unix.Unmount(m.Point, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Point, err))
			continue
		}
		removed = append(removed, m.Point)
	}

	if _, err := os.Lstat(abs); err == nil {
		if err := removeTree(abs); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, abs)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("cleanup leftovers in %s: %w", abs, err)
	}
	return removed, nil
}
