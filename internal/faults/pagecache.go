package faults

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Evict writes back a file's dirty pages and drops them all from the page
// cache, so that the next read or fault of each page goes to its device.
// Unlike /proc/sys/vm/drop_caches it leaves every other file cached: the
// code of the processes a test then measures does not fault in from the
// root disk, which would show up as stalls of its own.
func Evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("evict: %w", err)
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("evict %s: fdatasync: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s: fadvise: %w", path, err)
	}
	return nil
}
