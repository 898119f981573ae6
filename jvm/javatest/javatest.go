package javatest

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/nervehq/nerve/internal/privtest"
)

//go:embed java/*.java
var programs embed.FS

// Compile writes the named Java sources (file names under java/, like
// "HeapThrash.java"; none means all of them) to a scratch directory and
// compiles them into dir, where Start finds the classes.
func Compile(t testing.TB, dir string, sources ...string) {
	t.Helper()
	privtest.Tools(t, "java", "javac")
	if len(sources) == 0 {
		all, err := fs.Glob(programs, "java/*.java")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all {
			sources = append(sources, filepath.Base(p))
		}
	}
	src := t.TempDir()
	args := []string{"-d", dir, "-encoding", "UTF-8"}
	for _, name := range sources {
		b, err := programs.ReadFile("java/" + name)
		if err != nil {
			t.Fatalf("javatest: no program %q under java/: %v", name, err)
		}
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if out, err := exec.Command("javac", args...).CombinedOutput(); err != nil {
		t.Fatalf("javac %v: %v\n%s", sources, err, out)
	}
}

// JVM is one running java process started by Start.
type JVM struct {
	Cmd *exec.Cmd
	PID int
	// Log is the path of the JVM's unified safepoint log
	// (-Xlog:safepoint), which ParseSafepointLog reads.
	Log string

	out  *tailBuffer
	done chan struct{} // closed when Cmd.Wait has returned
	err  error         // Cmd.Wait's result; read only after done is closed

	mu     sync.Mutex
	killed bool // guarded by mu: Stop sent SIGKILL
}

// Start runs `java <log option> <jvmArgs> -cp dir class args...` and returns
// at once. The JVM logs its safepoints at info level to j.Log, a file of its
// own under the test's temporary directory, without rotation, so the whole
// run is in one file; jvmArgs may add more -Xlog options.
//
// The JVM is killed and reaped when the test ends, and also if the test
// binary dies first (the parent-death signal), so that a thrashing JVM never
// outlives its test on a shared CI machine. When the test failed, the
// cleanup logs the end of the JVM's output.
func Start(t testing.TB, dir, class string, jvmArgs []string, args ...string) *JVM {
	t.Helper()
	privtest.Tools(t, "java")
	logPath := filepath.Join(t.TempDir(), class+".safepoint.log")
	// Quoted, because -Xlog splits its argument at ':' and ','. Empty
	// decorators mean the defaults: [uptime][level][tags].
	argv := []string{fmt.Sprintf("-Xlog:safepoint=info:file=%q::filecount=0", logPath)}
	argv = append(argv, jvmArgs...)
	argv = append(argv, "-cp", dir, class)
	argv = append(argv, args...)

	cmd := exec.Command("java", argv...)
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig follows the OS thread that forked, which the Go runtime only
	// retires for goroutines that lock a thread and exit; tests here do not.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start java %s: %v", class, err)
	}
	j := &JVM{Cmd: cmd, PID: cmd.Process.Pid, Log: logPath, out: out, done: make(chan struct{})}
	// Ends when the JVM exits; Stop, and so the test's cleanup, make sure it does.
	go func() {
		j.err = cmd.Wait()
		close(j.done)
	}()
	t.Cleanup(func() {
		err := j.Stop()
		if t.Failed() {
			t.Logf("java %s (pid %d) ended: %v; output:\n%s", class, j.PID, err, j.Output())
		}
	})
	return j
}

// Wait waits for the JVM to exit on its own and returns nil if it exited
// with status 0, or an error with the end of its output. It returns
// ctx.Err() if ctx ends first, leaving the JVM running.
func (j *JVM) Wait(ctx context.Context) error {
	select {
	case <-j.done:
		return j.exitErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop kills the JVM with SIGKILL, unless it has already exited, and waits
// for it. It returns nil when the JVM exited with status 0 or was ended by
// this kill, and the exit error otherwise. Calling it again is harmless.
func (j *JVM) Stop() error {
	select {
	case <-j.done:
		return j.exitErr()
	default:
	}
	j.mu.Lock()
	j.killed = true
	j.mu.Unlock()
	if err := j.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill java pid %d: %w", j.PID, err)
	}
	<-j.done
	return j.exitErr()
}

// Output returns the end (at most 64 KiB) of what the JVM wrote to stdout
// and stderr so far.
func (j *JVM) Output() string { return j.out.String() }

// Safepoints parses the JVM's safepoint log as written so far.
func (j *JVM) Safepoints() ([]SafepointRecord, error) {
	f, err := os.Open(j.Log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := ParseSafepointLog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.Log, err)
	}
	return recs, nil
}

// exitErr is Cmd.Wait's result as Stop and Wait report it; done must be closed.
func (j *JVM) exitErr() error {
	if j.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(j.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			j.mu.Lock()
			killed := j.killed
			j.mu.Unlock()
			if killed {
				return nil
			}
		}
	}
	return fmt.Errorf("java pid %d: %w; output ends:\n%s", j.PID, j.err, j.out.Tail(2048))
}

// tailBuffer keeps the last max bytes written to it; the JVM's output
// copiers write to it while tests read it.
type tailBuffer struct {
	max int

	mu  sync.Mutex
	buf []byte // guarded by mu
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return b.Tail(b.max) }

// Tail returns the last n bytes written.
func (b *tailBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) > n {
		return string(b.buf[len(b.buf)-n:])
	}
	return string(b.buf)
}

// Source returns the embedded source of the named program (a file name under
// java/, like "HeapThrash.java"), for callers without a testing.TB, such as
// `nerve drill`, which runs it with java's source-file mode.
func Source(name string) ([]byte, error) {
	b, err := programs.ReadFile("java/" + name)
	if err != nil {
		return nil, fmt.Errorf("javatest: no program %q under java/: %w", name, err)
	}
	return b, nil
}
