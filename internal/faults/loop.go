package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors a caller may want to tell apart; test them with errors.Is.
var (
	// ErrNoDirectIO means the loop driver would not use direct I/O over the
	// backing file, so block requests would go through the page cache and
	// the backing file would not see one request per block request.
	ErrNoDirectIO = errors.New("loop device cannot use direct i/o")
	// ErrNoFUSE means /dev/fuse is missing and loading the fuse module did
	// not make it appear.
	ErrNoFUSE = errors.New("fuse unavailable: /dev/fuse missing (load the fuse module, or install fuse3)")
)

const (
	sysBlock = "/sys/block"

	// dioBlockSize is the logical block size tried when the kernel refuses
	// direct I/O with the default one: backing filesystems that want
	// aligned direct I/O never want more than a page.
	dioBlockSize = 4096

	// defaultLoopDepth is the loop driver's default hardware queue depth,
	// used when its hw_queue_depth parameter cannot be read.
	defaultLoopDepth = 128
)

// detachTimeout bounds the wait for the kernel to release a loop device.
// The release is deferred while anyone else holds the device open, so it
// can take as long as that opener likes. A variable for tests.
var detachTimeout = 10 * time.Second

// Loop is a loop device over a plain file, attached with losetup.
type Loop struct {
	name         string // "loop3"
	backing      string // the backing file, as the kernel reports it
	major, minor uint32

	mu       sync.Mutex
	detached bool // guarded by mu
}

// AttachLoop attaches a free loop device to the file backing, with direct
// I/O on when directIO is set (and fails with ErrNoDirectIO when the kernel
// will not use it). The device is as large as the file.
func AttachLoop(backing string, directIO bool) (*Loop, error) {
	path, err := canonical(backing)
	if err != nil {
		return nil, fmt.Errorf("attach loop over %s: %w", backing, err)
	}
	if err := ensureDevice("/dev/loop-control", "loop"); err != nil {
		return nil, fmt.Errorf("attach loop over %s: %w", path, err)
	}
	args := []string{"--find", "--show"}
	if directIO {
		args = append(args, "--direct-io=on")
	}
	out, err := run("losetup", append(args, path)...)
	name := strings.TrimPrefix(strings.TrimSpace(out), "/dev/")
	isLoop := strings.HasPrefix(name, "loop") && !strings.Contains(name, "/")
	if err != nil {
		// losetup prints the device before it sets direct I/O, and fails
		// without detaching it when that does not work.
		if isLoop {
			if cur, cerr := backingFile(name); cerr == nil && cur == path {
				err = errors.Join(err, detachLoop(name, path))
			}
		}
		return nil, fmt.Errorf("attach loop over %s: %w", path, err)
	}
	if !isLoop {
		return nil, fmt.Errorf("attach loop over %s: losetup printed %q, not a loop device", path, out)
	}
	l := &Loop{name: name, backing: path}
	if err := l.init(directIO); err != nil {
		return nil, errors.Join(fmt.Errorf("attach loop over %s: %w", path, err), l.Close())
	}
	return l, nil
}

// init reads what the kernel made of the new device and enables direct I/O.
func (l *Loop) init(directIO bool) error {
	// The kernel reports the path its own way; Close compares against that.
	if got, err := backingFile(l.name); err == nil {
		l.backing = got
	}
	dev, err := readSysfs(filepath.Join(sysBlock, l.name, "dev"))
	if err != nil {
		return err
	}
	if l.major, l.minor, err = parseDevNum(dev); err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	// Queue settings outlive a binding: start from the driver's defaults,
	// not from what the device's last user left.
	if err := l.resetQueue(); err != nil {
		return err
	}
	if directIO {
		return l.enableDirectIO()
	}
	return nil
}

// resetQueue sets the device's scheduler and queue depth back to the loop
// driver's defaults: no scheduler, and as many requests as the driver's
// hardware queue depth.
func (l *Loop) resetQueue() error {
	depth := defaultLoopDepth
	if s, err := readSysfs("/sys/module/loop/parameters/hw_queue_depth"); err == nil {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			depth = n
		}
	}
	if err := l.SetScheduler("none"); err != nil {
		return err
	}
	return l.SetNrRequests(depth)
}

// enableDirectIO makes sure direct I/O is on, retrying with a larger logical
// block size when the backing filesystem needs more alignment than losetup
// gave the device.
func (l *Loop) enableDirectIO() error {
	if l.DirectIO() {
		return nil
	}
	f, err := os.OpenFile(l.Device(), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_BLOCK_SIZE, dioBlockSize); err != nil {
		return fmt.Errorf("%w on %s: set block size %d: %w", ErrNoDirectIO, l.name, dioBlockSize, err)
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1); err != nil {
		return fmt.Errorf("%w on %s: %w", ErrNoDirectIO, l.name, err)
	}
	if !l.DirectIO() {
		return fmt.Errorf("%w on %s: %s reads 0", ErrNoDirectIO, l.name, filepath.Join(sysBlock, l.name, "loop", "dio"))
	}
	return nil
}

// Device returns the device path, "/dev/loopN".
func (l *Loop) Device() string { return "/dev/" + l.name }

// Name returns the kernel's name for the device, "loopN".
func (l *Loop) Name() string { return l.name }

// DevNum returns the device's major and minor numbers.
func (l *Loop) DevNum() (major, minor uint32) { return l.major, l.minor }

// Backing returns the backing file's path as the kernel reports it.
func (l *Loop) Backing() string { return l.backing }

// DirectIO reports whether the loop driver uses direct I/O on the backing
// file right now.
func (l *Loop) DirectIO() bool {
	s, err := readSysfs(filepath.Join(sysBlock, l.name, "loop", "dio"))
	return err == nil && s == "1"
}

// SetScheduler selects the device's I/O scheduler ("none", "mq-deadline",
// ...) and checks that the kernel took it.
func (l *Loop) SetScheduler(s string) error {
	if err := writeSysfs(l.queueAttr("scheduler"), s); err != nil {
		return fmt.Errorf("set scheduler of %s to %q: %w", l.name, s, err)
	}
	got, err := l.Scheduler()
	if err != nil {
		return fmt.Errorf("set scheduler of %s to %q: %w", l.name, s, err)
	}
	if got != s {
		return fmt.Errorf("set scheduler of %s to %q: kernel selected %q", l.name, s, got)
	}
	return nil
}

// Scheduler returns the device's current I/O scheduler.
func (l *Loop) Scheduler() (string, error) {
	s, err := readSysfs(l.queueAttr("scheduler"))
	if err != nil {
		return "", err
	}
	// The list reads "none [mq-deadline] kyber"; with a single choice it
	// may read just "none".
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return f[1 : len(f)-1], nil
		}
	}
	if f := strings.Fields(s); len(f) == 1 {
		return f[0], nil
	}
	return "", fmt.Errorf("no scheduler selected in %q", s)
}

// SetNrRequests sets the device's request queue depth and checks that the
// kernel kept the value rather than clamping it. Switching the scheduler
// resets the depth, so set it after SetScheduler.
func (l *Loop) SetNrRequests(n int) error {
	if err := writeSysfs(l.queueAttr("nr_requests"), strconv.Itoa(n)); err != nil {
		return fmt.Errorf("set nr_requests of %s to %d: %w", l.name, n, err)
	}
	got, err := l.NrRequests()
	if err != nil {
		return fmt.Errorf("set nr_requests of %s to %d: %w", l.name, n, err)
	}
	if got != n {
		return fmt.Errorf("set nr_requests of %s to %d: kernel kept %d", l.name, n, got)
	}
	return nil
}

// NrRequests returns the device's request queue depth.
func (l *Loop) NrRequests() (int, error) {
	s, err := readSysfs(l.queueAttr("nr_requests"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

func (l *Loop) queueAttr(attr string) string {
	return filepath.Join(sysBlock, l.name, "queue", attr)
}

// Close puts the device's scheduler and queue depth back to the loop
// driver's defaults (the kernel keeps them for the device's next user),
// detaches the device and waits until the kernel has released the backing
// file. When the device is no longer bound to this Loop's file (someone
// else detached it), Close leaves it alone. Close is idempotent.
func (l *Loop) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.detached {
		return nil
	}
	var errs []error
	if cur, err := backingFile(l.name); err == nil && cur == l.backing {
		if err := l.resetQueue(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := detachLoop(l.name, l.backing); err != nil {
		errs = append(errs, fmt.Errorf("detach %s from %s: %w", l.Device(), l.backing, err))
	} else {
		l.detached = true
	}
	return errors.Join(errs...)
}

// detachLoop detaches the loop device name if, and only if, it is bound to
// backing, and waits for the kernel to let go of the file.
func detachLoop(name, backing string) error {
	cur, err := backingFile(name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && cur != backing) {
		return nil // already detached; the number may be someone else's now
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile("/dev/"+name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	// With other openers the kernel only marks the device to be detached on
	// last close; with none, closing our descriptor detaches it.
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// ENXIO: a detach is already under way.
	if err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("LOOP_CLR_FD: %w", err)
	}
	return waitDetached(name, backing, detachTimeout)
}

// waitDetached polls until the loop device name no longer serves backing.
func waitDetached(name, backing string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cur, err := backingFile(name)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && cur != backing) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still bound after %v: another process holds /dev/%s open, and the kernel detaches it on its last close", timeout, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backingFile returns the file a loop device is bound to, or an error
// wrapping fs.ErrNotExist when it is bound to none.
func backingFile(name string) (string, error) {
	s, err := readSysfs(filepath.Join(sysBlock, name, "loop", "backing_file"))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(s, " (deleted)"), nil
}

// loopDevices lists the loop devices bound to a file, keyed by name.
func loopDevices() (map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(sysBlock, "loop*", "loop", "backing_file"))
	if err != nil {
		return nil, err
	}
	devs := make(map[string]string, len(paths))
	for _, p := range paths {
		name := filepath.Base(filepath.Dir(filepath.Dir(p)))
		b, err := backingFile(name)
		if err != nil {
			continue // detached since the glob
		}
		devs[name] = b
	}
	return devs, nil
}

func parseDevNum(s string) (major, minor uint32, err error) {
	majStr, minStr, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, 0, fmt.Errorf("parse device number %q: want major:minor", s)
	}
	a, err := strconv.ParseUint(majStr, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("parse device number %q: %w", s, err)
	}
	b, err := strconv.ParseUint(minStr, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("parse device number %q: %w", s, err)
	}
	return uint32(a), uint32(b), nil
}

func readSysfs(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysfs(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// canonical returns the absolute path with symlinks resolved, the form in
// which the kernel reports backing files and mount points.
func canonical(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// ensureDevice makes sure the device node dev exists, loading module when
// it does not (the kernel may have it as a module that nothing loaded yet).
func ensureDevice(dev, module string) error {
	if _, err := os.Stat(dev); err == nil {
		return nil
	}
	if _, err := exec.LookPath("modprobe"); err == nil {
		// A failure shows as the missing device below.
		_, _ = run("modprobe", module)
	}
	if _, err := os.Stat(dev); err != nil {
		return fmt.Errorf("load module %s: %w", module, err)
	}
	return nil
}

// run runs a program and returns its standard output, also when it fails;
// its standard error goes into the error.
func run(name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return string(out), fmt.Errorf("%s %s: %s: %w", name, strings.Join(args, " "), msg, err)
		}
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}
