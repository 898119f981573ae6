package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

const (
	// diskFile is the name of the single file the FUSE filesystem serves.
	diskFile = "disk"

	// maxBackground is the number of asynchronous FUSE requests the kernel
	// may have in flight. The loop driver's direct I/O is asynchronous and
	// every request sleeps, so this, not the server, bounds concurrency; it
	// is well above the loop device's default queue depth of 128.
	maxBackground = 1024

	// cancelCheck is how often a sleeping request looks whether it was
	// cancelled.
	cancelCheck = 20 * time.Millisecond

	// serverStopTimeout bounds the wait for the FUSE server to end once its
	// filesystem is unmounted and no longer in use.
	serverStopTimeout = 10 * time.Second
)

// SlowDisk is a loop device (direct I/O on) whose backing file sits on a
// small FUSE filesystem served by this process that sleeps Delay on every
// read and write. Block requests on the device therefore take the delay
// longer to complete. The data lives in a sparse file next to the mount
// point, so what is written can be read back.
//
// The embedded Loop gives the device's name and numbers and lets a test set
// its scheduler and queue depth; use SlowDisk.Close, not Loop.Close, to tear
// it down.
type SlowDisk struct {
	*Loop

	root  string // scratch directory of this disk, below the caller's dir
	mnt   string // FUSE mount point
	delay *atomic.Int64
	store *os.File
	srv   *fuse.Server
	done  chan struct{} // closed when the FUSE server loop has returned

	mu     sync.Mutex
	closed bool // guarded by mu
}

// NewSlowDisk makes a slow disk of size bytes (a multiple of 4096) whose
// reads and writes each take delay longer. It creates a fresh directory in
// dir (creating dir if needed) for the backing store and the FUSE mount.
func NewSlowDisk(dir string, size int64, delay time.Duration) (d *SlowDisk, err error) {
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("new slow disk: %w", err)
	}
	if err := ensureDevice("/dev/fuse", "fuse"); err != nil {
		return nil, fmt.Errorf("new slow disk: %w: %w", ErrNoFUSE, err)
	}
	root, err := scratchDir(dir, "slowdisk-")
	if err != nil {
		return nil, fmt.Errorf("new slow disk in %s: %w", dir, err)
	}
	// The delay starts once the device is attached and udev is done with
	// it: its probes of a new device (blkid) would otherwise be slow reads
	// in flight beside the first ones of whoever uses the disk.
	d = &SlowDisk{root: root, mnt: mountPath(root), delay: new(atomic.Int64), done: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
			d = nil
		}
	}()

	d.store, err = os.OpenFile(filepath.Join(root, "store"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return d, fmt.Errorf("new slow disk: %w", err)
	}
	if err := d.store.Truncate(size); err != nil {
		return d, fmt.Errorf("new slow disk: size store: %w", err)
	}
	if err := os.Mkdir(d.mnt, 0o755); err != nil {
		return d, fmt.Errorf("new slow disk: %w", err)
	}
	if err := d.serve(); err != nil {
		return d, fmt.Errorf("new slow disk: mount fuse on %s: %w", d.mnt, err)
	}
	d.Loop, err = AttachLoop(filepath.Join(d.mnt, diskFile), true)
	if err != nil {
		return d, fmt.Errorf("new slow disk: %w", err)
	}
	udevSettle()
	d.SetDelay(delay)
	return d, nil
}

// udevSettle waits, a few seconds at most, until udev has handled the
// events queued so far, where udev runs (its control socket exists); it is
// best effort: a disk whose first reads overlap udev's is still a disk.
func udevSettle() {
	if _, err := os.Stat("/run/udev/control"); err != nil {
		return
	}
	exec.Command("udevadm", "settle", "--timeout=5").Run()
}

// serve mounts the FUSE filesystem and starts the goroutine that serves
// it; see the package documentation for how it ends.
func (d *SlowDisk) serve() error {
	file := &slowFile{store: d.store, delay: d.delay}
	root := &slowRoot{file: file}
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:    true,
			DirectMount:   true,
			FsName:        "nerve-slowdisk",
			Name:          "nervefaults",
			MaxBackground: maxBackground,
			// Without ASYNC_DIO the kernel turns the loop driver's
			// asynchronous direct I/O into synchronous requests, and
			// the loop worker serves them one at a time: a queue of
			// 32 would take 32 delays.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
			DisableXAttrs:     true,
		},
	}
	// go-fuse serves at most GOMAXPROCS requests at once (each reader
	// goroutine handles its request before reading the next), and it reads
	// that limit when the server is made. Every request here sleeps, so on
	// a 2-CPU machine a queue of 32 would be served 2-4 at a time: raise
	// the limit to go-fuse's cap for the server's creation only.
	prev := runtime.GOMAXPROCS(16)
	srv, err := fuse.NewServer(fs.NewNodeFS(root, opts), d.mnt, &opts.MountOptions)
	runtime.GOMAXPROCS(prev)
	if err == nil {
		closeOnExecFUSE()
	}
	if err != nil {
		// NewServer can fail after mounting (in INIT); do not leave the
		// mount behind.
		if ms, merr := mountsUnder(d.root); merr == nil && len(ms) > 0 {
			_ = unix.Unmount(d.mnt, unix.MNT_DETACH)
		}
		close(d.done)
		return err
	}
	d.srv = srv
	go func() {
		defer close(d.done)
		srv.Serve()
	}()
	return srv.WaitMount()
}

// SetDelay changes the delay added to every read and write. It takes effect
// for requests that start after it returns; negative means zero.
func (d *SlowDisk) SetDelay(delay time.Duration) {
	d.delay.Store(int64(max(delay, 0)))
}

// Delay returns the delay currently added to every read and write.
func (d *SlowDisk) Delay() time.Duration { return time.Duration(d.delay.Load()) }

// Close detaches the loop device, unmounts the FUSE filesystem, waits for
// its server to end and removes the disk's files. It is idempotent.
//
// If another process still holds the device open, the kernel only detaches
// it on that process's last close: Close then unmounts lazily, returns an
// error saying so, and the FUSE server keeps serving until that close.
func (d *SlowDisk) Close() error {
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
	stopped := true
	if d.srv != nil {
		if err := d.stopServer(); err != nil {
			errs = append(errs, err)
			stopped = false
		}
	}
	if d.store != nil {
		if stopped {
			if err := d.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		} else {
			// The server may still serve the device's last user: keep the
			// (now unlinked) store open until it ends.
			go func() {
				<-d.done
				d.store.Close()
			}()
		}
	}
	if err := removeTree(d.root); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close slow disk %s: %w", d.root, err)
	}
	return nil
}

// stopServer unmounts the FUSE filesystem, unless someone else already did
// (CleanupLeftovers), and waits for the server loop to return.
func (d *SlowDisk) stopServer() error {
	select {
	case <-d.done:
		return nil // already unmounted and torn down
	default:
	}
	ms, err := mountsUnder(d.root)
	if err != nil {
		return err
	}
	lazy := false
	for _, m := range ms {
		if m.Point != d.mnt {
			continue
		}
		if lazy, err = unmount(d.mnt); err != nil {
			return err
		}
	}
	if lazy {
		return fmt.Errorf("unmount %s: busy, unmounted lazily; the fuse server ends when its last user closes it", d.mnt)
	}
	select {
	case <-d.done:
		return nil
	case <-time.After(serverStopTimeout):
		return fmt.Errorf("fuse server on %s still running %v after unmount", d.mnt, serverStopTimeout)
	}
}

// slowRoot is the root directory of the FUSE filesystem: it holds one file.
type slowRoot struct {
	fs.Inode
	file *slowFile
}

var _ fs.NodeOnAdder = (*slowRoot)(nil)

func (r *slowRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild(diskFile, ch, true)
}

// slowFile is the loop device's backing file. Every read and write sleeps
// for the delay, then goes to the store. Opens get FOPEN_DIRECT_IO, so the
// kernel caches nothing and every read reaches the server.
type slowFile struct {
	fs.Inode
	store *os.File
	delay *atomic.Int64 // nanoseconds; shared with SlowDisk
}

var (
	_ fs.NodeOpener    = (*slowFile)(nil)
	_ fs.NodeReader    = (*slowFile)(nil)
	_ fs.NodeWriter    = (*slowFile)(nil)
	_ fs.NodeGetattrer = (*slowFile)(nil)
	_ fs.NodeSetattrer = (*slowFile)(nil)
	_ fs.NodeFsyncer   = (*slowFile)(nil)
	_ fs.NodeAllocater = (*slowFile)(nil)
)

func (f *slowFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *slowFile) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := f.wait(ctx); errno != 0 {
		return nil, errno
	}
	n, err := f.store.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *slowFile) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := f.wait(ctx); errno != 0 {
		return 0, errno
	}
	n, err := f.store.WriteAt(data, off)
	if err != nil {
		return uint32(n), fs.ToErrno(err)
	}
	return uint32(n), 0
}

// wait sleeps for the current delay. It returns EINTR early when the
// kernel cancels the request, which it does when the filesystem goes away.
func (f *slowFile) wait(ctx context.Context) syscall.Errno {
	if err := sleepCtx(ctx, time.Duration(f.delay.Load())); err != nil {
		return syscall.EINTR
	}
	return 0
}

func (f *slowFile) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.store.Fd()), &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Ino = 0 // the library sets the FUSE inode number
	out.Mode = syscall.S_IFREG | 0o600
	out.Nlink = 1
	return 0
}

// Setattr supports only changing the size; other attributes are accepted
// and ignored, as nothing here depends on them.
func (f *slowFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if err := f.store.Truncate(int64(size)); err != nil {
			return fs.ToErrno(err)
		}
	}
	return f.Getattr(ctx, fh, out)
}

// Fsync does nothing: the store is scratch data in the page cache, and
// durability across a crash of the machine is not part of the fault.
func (f *slowFile) Fsync(ctx context.Context, _ fs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// Allocate passes fallocate through, so discard and write-zeroes requests
// on the loop device (which become FALLOC_FL_PUNCH_HOLE and friends) work.
func (f *slowFile) Allocate(ctx context.Context, _ fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	return fs.ToErrno(unix.Fallocate(int(f.store.Fd()), mode, int64(off), int64(size)))
}

// sleepCtx blocks the calling goroutine, and its OS thread, for d, or until
// ctx is done (then it returns ctx.Err(), within cancelCheck).
//
// It sleeps in the kernel, with clock_nanosleep on an absolute deadline,
// rather than on a Go timer. Go timers are kept per P by the runtime, and
// on saturated CPUs they fire late by tens to hundreds of milliseconds when
// the thread holding that P is not running: on a loaded 2-CPU VM, a 20 ms
// time.Sleep took 20.3 ms at p50 but 184 ms at p90, while clock_nanosleep
// took 20.1 ms and 20.8 ms. The kernel wakes the sleeping thread itself.
// The cost is one OS thread per request in flight.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return err
	}
	deadline := now.Nano() + int64(d)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return err
		}
		left := deadline - now.Nano()
		if left <= 0 {
			return nil
		}
		wake := unix.NsecToTimespec(now.Nano() + min(left, int64(cancelCheck)))
		// EINTR (a signal) only means sleeping again for what is left.
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &wake, nil); err != nil && err != unix.EINTR {
			return err
		}
	}
}

// closeOnExecFUSE marks this process's /dev/fuse descriptors close-on-exec.
// go-fuse opens the device without the flag, so every child started after
// the mount would inherit the connection and keep it open: a child stuck
// on the slow disk after its parent died would then wait on a connection
// it holds itself, for ever. A child forked between go-fuse's open and this
// call still inherits it; callers that start children concurrently with
// NewSlowDisk are not expected.
func closeOnExecFUSE() {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		if t, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && t == "/dev/fuse" {
			unix.CloseOnExec(fd)
		}
	}
}
