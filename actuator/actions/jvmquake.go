package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultDumpTimeout bounds each dump when JVMQuake.Timeout is 0.
const DefaultDumpTimeout = 2 * time.Minute

// Once SIGKILLed, a process is normally gone in milliseconds; one stuck in
// uninterruptible I/O is not, and Run says so rather than wait forever.
const killWait = 30 * time.Second

// sigquitGrace gives a JVM that was sent SIGQUIT time to print its thread
// dump (at a safepoint) before it is killed.
const sigquitGrace = 2 * time.Second

// JVMQuake ends a JVM that is dying slowly (query_of_death), the way
// jvmquake does: dump first, so the cause can be found, then SIGKILL, so the
// node stops serving from a process in a GC spiral. systemd's Restart= then
// brings the database back.
//
// The dumps are best effort and never stop the kill: a thrashing JVM may
// not answer jcmd within Timeout. The process is tracked through a pidfd
// from the first step, so the kill cannot hit another process that took
// the PID over meanwhile.
//
// Limits: jcmd runs in nerve's own namespaces. For a JVM in a container it
// must run in the JVM's (nsenter, or the container's own jcmd), which this
// does not do. The heap dump is written by the JVM itself, so DumpDir must
// be a path the JVM's user can write, as the JVM sees it.
type JVMQuake struct {
	PID      int
	DumpDir  string        // made if missing
	HeapDump bool          // also dump the heap: as large as the heap, and slow
	Timeout  time.Duration // bounds each dump; 0 means DefaultDumpTimeout
	Jcmd     string        // the jcmd program; "" means "jcmd" on PATH
}

// QuakeResult is what JVMQuake did.
type QuakeResult struct {
	PID         int
	AlreadyGone bool   // the process had exited before Run: nothing to do
	ThreadDump  string // file path; "" if none was written (see DumpErr)
	HeapDump    string // file path; "" if not asked for or not written
	// DumpErr says why a dump asked for is missing; the kill went ahead.
	DumpErr error
}

// Run dumps the JVM, kills it and waits until it is gone. It returns an
// error only when the JVM could not be killed or did not die; a JVM already
// gone is success. If ctx ends before the kill, Run returns without killing.
func (q JVMQuake) Run(ctx context.Context) (QuakeResult, error) {
	res := QuakeResult{PID: q.PID}
	fail := func(err error) (QuakeResult, error) {
		return res, fmt.Errorf("jvmquake pid %d: %w", q.PID, err)
	}
	if q.PID <= 0 {
		return fail(errors.New("no pid"))
	}
	pidfd, err := unix.PidfdOpen(q.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		res.AlreadyGone = true
		return res, nil
	}
	if err != nil {
		return fail(fmt.Errorf("pidfd_open: %w", err))
	}
	defer unix.Close(pidfd)

	res.ThreadDump, res.HeapDump, res.DumpErr = q.dump(ctx, pidfd)

	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("not killed: %w", err))
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fail(fmt.Errorf("SIGKILL: %w", err))
	}
	if err := waitGone(ctx, pidfd, killWait); err != nil {
		return fail(err)
	}
	return res, nil
}

// dump writes the thread dump and, if asked, the heap dump, and returns
// their paths and why any is missing.
func (q JVMQuake) dump(ctx context.Context, pidfd int) (threads, heap string, err error) {
	dir, err := filepath.Abs(q.DumpDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return "", "", fmt.Errorf("dump dir %q: %w", q.DumpDir, err)
	}
	jcmd := q.Jcmd
	if jcmd == "" {
		jcmd = "jcmd"
	}
	timeout := q.Timeout
	if timeout == 0 {
		timeout = DefaultDumpTimeout
	}
	pid := strconv.Itoa(q.PID)
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var errs []error

	threads = filepath.Join(dir, fmt.Sprintf("threads-%d-%s.txt", q.PID, stamp))
	if err := jcmdThreadDump(ctx, jcmd, pid, threads, timeout); err != nil {
		threads = ""
		// SIGQUIT needs no attach: the JVM prints the dump to its own
		// output (the journal), and may manage it when jcmd could not.
		qerr := unix.PidfdSendSignal(pidfd, unix.SIGQUIT, nil, 0)
		if qerr == nil {
			err = fmt.Errorf("%w; sent SIGQUIT instead: look for the dump in the JVM's output", err)
			sleepCtx(ctx, sigquitGrace)
		}
		errs = append(errs, err)
	}
	if q.HeapDump {
		heap = filepath.Join(dir, fmt.Sprintf("heap-%d-%s.hprof", q.PID, stamp))
		res, err := runCommand(ctx, []string{jcmd, pid, "GC.heap_dump", heap}, nil, timeout, 0)
		if err == nil {
			err = nonEmpty(heap)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("jcmd GC.heap_dump to %s (may be partial): %w; jcmd said %q", heap, err, lastLine(res.Output)))
			heap = ""
		}
	}
	return threads, heap, errors.Join(errs...)
}

// jcmdThreadDump writes `jcmd pid Thread.print` to path. jcmd reports some
// failures with exit status 0, so the file must look like a thread dump.
func jcmdThreadDump(ctx context.Context, jcmd, pid, path string, timeout time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("thread dump: %w", err)
	}
	res, err := runCommandTo(ctx, f, []string{jcmd, pid, "Thread.print"}, nil, timeout, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var head []byte
		head, err = readHead(path, 4096)
		if err == nil && !strings.Contains(string(head), "Full thread dump") {
			err = fmt.Errorf("no thread dump in the output: %q", lastLine(string(head)))
		}
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("jcmd Thread.print: %w; jcmd said %q", err, lastLine(res.Output))
	}
	return nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.Read(b)
	if k > 0 {
		err = nil
	}
	return b[:k], err
}

func nonEmpty(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	return nil
}

// waitGone waits until the process behind pidfd has exited (the pidfd
// becomes readable), for at most limit or until ctx ends.
func waitGone(ctx context.Context, pidfd int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for exit: poll pidfd: %w", err)
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("killed, but not gone yet: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("killed, but still not gone after %v (uninterruptible sleep?)", limit)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
