package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// tmpfsSlack is room in the tmpfs beyond the disk file, so that filling the
// whole device never meets ENOSPC from the tmpfs.
const tmpfsSlack = 1 << 20

// FastDisk is a loop device over a file in a tmpfs this package mounts: a
// fast, healthy device for overload tests. It uses direct I/O when the
// kernel supports it over tmpfs (Linux 6.6 and later; see DirectIO), which
// keeps a second copy of the data out of the page cache.
//
// The embedded Loop gives the device's name and numbers, scheduler and
// queue depth; use FastDisk.Close, not Loop.Close, to tear it down.
type FastDisk struct {
	*Loop

	root string // scratch directory of this disk, below the caller's dir
	mnt  string // tmpfs mount point

	mu     sync.Mutex
	closed bool // guarded by mu
}

// NewFastDisk makes a fast disk of size bytes (a multiple of 4096), backed
// by memory. It creates a fresh directory in dir (creating dir if needed)
// for the tmpfs mount.
func NewFastDisk(dir string, size int64) (d *FastDisk, err error) {
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("new fast disk: %w", err)
	}
	root, err := scratchDir(dir, "fastdisk-")
	if err != nil {
		return nil, fmt.Errorf("new fast disk in %s: %w", dir, err)
	}
	d = &FastDisk{root: root, mnt: mountPath(root)}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
			d = nil
		}
	}()

	if err := os.Mkdir(d.mnt, 0o755); err != nil {
		return d, fmt.Errorf("new fast disk: %w", err)
	}
	opts := "mode=0755,size=" + strconv.FormatInt(size+tmpfsSlack, 10)
	if err := unix.Mount("nerve-fastdisk", d.mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return d, fmt.Errorf("new fast disk: mount tmpfs on %s: %w", d.mnt, err)
	}
	file := filepath.Join(d.mnt, diskFile)
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return d, fmt.Errorf("new fast disk: %w", err)
	}
	if err := os.Truncate(file, size); err != nil {
		return d, fmt.Errorf("new fast disk: size %s: %w", file, err)
	}
	d.Loop, err = AttachLoop(file, true)
	if errors.Is(err, ErrNoDirectIO) {
		// Older kernels cannot do direct I/O on tmpfs; buffered I/O over
		// memory is still fast.
		d.Loop, err = AttachLoop(file, false)
	}
	if err != nil {
		return d, fmt.Errorf("new fast disk: %w", err)
	}
	return d, nil
}

// Close detaches the loop device, unmounts the tmpfs and removes the disk's
// directory. It is idempotent.
func (d *FastDisk) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true

	var errs []error
	if d.Loop != nil {
		if err := d.Loop.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	ms, err := mountsUnder(d.root)
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range ms {
		if m.Point != d.mnt {
			continue
		}
		// A lazy unmount is enough here: the memory is freed when the
		// last user lets go, and nothing waits on it.
		if _, err := unmount(d.mnt); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeTree(d.root); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close fast disk %s: %w", d.root, err)
	}
	return nil
}
