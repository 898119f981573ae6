// Package canary checks that a data mount still reads and writes: a small
// direct-I/O write, fsync and read-back of a file of its own, with a
// timeout. A drive that has failed, or hangs, shows here before the database
// notices (failed_drive).
package canary

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/actuator"
)

// FileName is the canary's file in each mount.
const FileName = ".nerve-canary"

const blockSize = 4096

// Checker runs canaries and never has more than one I/O in flight per
// mount: an I/O stuck in the kernel cannot be cancelled, so a hung check is
// reported as a timeout and the next check waits for it instead of piling up.
type Checker struct {
	Timeout time.Duration

	mu       sync.Mutex      // guards inflight
	inflight map[string]bool // mount -> a check still running
}

// New returns a checker with the timeout (0 means 5 s).
func New(timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Checker{Timeout: timeout, inflight: map[string]bool{}}
}

// Check writes, syncs and reads back one block on mount.
func (c *Checker) Check(ctx context.Context, mount string) actuator.CanaryResult {
	res := actuator.CanaryResult{Mount: mount}
	c.mu.Lock()
	if c.inflight[mount] {
		c.mu.Unlock()
		res.Err = "previous check still blocked in the kernel"
		res.Latency = c.Timeout
		return res
	}
	c.inflight[mount] = true
	c.mu.Unlock()

	done := make(chan error, 1)
	start := time.Now()
	// Ends when the I/O returns, however long the kernel takes.
	go func() {
		err := roundTrip(filepath.Join(mount, FileName))
		c.mu.Lock()
		delete(c.inflight, mount)
		c.mu.Unlock()
		done <- err
	}()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	select {
	case err := <-done:
		res.Latency = time.Since(start)
		if err != nil {
			res.Err = err.Error()
		}
	case <-ctx.Done():
		res.Latency = time.Since(start)
		res.Err = fmt.Sprintf("timed out after %v", c.Timeout)
	}
	return res
}

// roundTrip writes a random block with O_DIRECT|O_DSYNC and reads it back.
func roundTrip(path string) error {
	buf := aligned(blockSize)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT|unix.O_DSYNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("canary %s: open: %w", path, err)
	}
	defer unix.Close(fd)
	if n, err := unix.Pwrite(fd, buf, 0); err != nil || n != blockSize {
		return fmt.Errorf("canary %s: write: %v (%d bytes)", path, err, n)
	}
	got := aligned(blockSize)
	if n, err := unix.Pread(fd, got, 0); err != nil || n != blockSize {
		return fmt.Errorf("canary %s: read: %v (%d bytes)", path, err, n)
	}
	if !bytes.Equal(buf, got) {
		return errors.New("canary " + path + ": read back different data")
	}
	return nil
}

// aligned returns a buffer aligned for O_DIRECT.
func aligned(n int) []byte {
	b := make([]byte, n+blockSize)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (blockSize - 1))
	if off != 0 {
		off = blockSize - off
	}
	return b[off : off+n]
}
