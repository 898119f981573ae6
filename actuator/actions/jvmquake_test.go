package actions

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
)

// TestJVMQuakeThrashingJVM dumps and kills a real JVM in a GC spiral: a
// live set near its 64 MiB heap, replaced all the time.
func TestJVMQuakeThrashingJVM(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "java", "javac", "jcmd")
	classes := t.TempDir()
	javatest.Compile(t, classes, "HeapThrash.java")
	j := javatest.Start(t, classes, "HeapThrash", []string{"-Xmx64m"})
	waitSafepoints(t, j, 20) // it runs and collects: it is thrashing

	dumps := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := JVMQuake{PID: j.PID, DumpDir: dumps, HeapDump: true, Timeout: time.Minute}.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("result: %+v", res)
	if res.DumpErr != nil {
		t.Errorf("DumpErr = %v, want both dumps", res.DumpErr)
	}
	checkFile(t, res.ThreadDump, "Full thread dump")
	checkFile(t, res.HeapDump, "JAVA PROFILE")

	// The JVM's own exit status, seen by its parent: killed by SIGKILL.
	if err := j.Wait(ctx); err == nil {
		t.Fatal("the JVM exited cleanly, want killed")
	}
	if ws := j.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("JVM ended with %v, want killed by SIGKILL", j.Cmd.ProcessState)
	}

	// Again, on the same (now gone) PID: nothing to do.
	again, err := JVMQuake{PID: j.PID, DumpDir: dumps}.Run(ctx)
	if err != nil || !again.AlreadyGone {
		t.Errorf("second Run = %+v, %v; want AlreadyGone", again, err)
	}
}

// A process jcmd cannot attach to still gets killed, and the result says
// why there are no dumps.
func TestJVMQuakeDumpFailureStillKills(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() // ends when sleep is killed, by Run or below
	defer func() { cmd.Process.Kill(); <-done }()

	jcmd := fakeProgram(t, "jcmd", "echo \"$1: Unable to open socket file\" >&2; exit 1\n")
	res, err := JVMQuake{PID: cmd.Process.Pid, DumpDir: t.TempDir(), HeapDump: true, Jcmd: jcmd, Timeout: 5 * time.Second}.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ThreadDump != "" || res.HeapDump != "" || res.DumpErr == nil {
		t.Errorf("result = %+v, want no dumps and a DumpErr", res)
	}
	for _, s := range []string{"Thread.print", "GC.heap_dump", "Unable to open socket file"} {
		if res.DumpErr != nil && !strings.Contains(res.DumpErr.Error(), s) {
			t.Errorf("DumpErr %q does not contain %q", res.DumpErr, s)
		}
	}
	select {
	case <-done:
		// sleep gets SIGQUIT first (the fallback), which ends it too:
		// either signal means Run ended it.
		if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() {
			t.Errorf("sleep ended with %v, want a signal", cmd.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Error("the process is still running after Run")
	}
}

func waitSafepoints(t *testing.T, j *javatest.JVM, n int) {
	t.Helper()
	for i := 0; i < 300; i++ {
		recs, err := j.Safepoints()
		if err == nil && len(recs) >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the JVM did not reach %d safepoints in 30s:\n%s", n, j.Output())
}

func checkFile(t *testing.T, path, contains string) {
	t.Helper()
	if path == "" {
		t.Errorf("no file for %q", contains)
		return
	}
	head, err := readHead(path, 4096)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return
	}
	if !strings.Contains(string(head), contains) {
		t.Errorf("%s does not start with %q: %q", path, contains, head[:min(len(head), 200)])
	}
	if fi, err := os.Stat(path); err == nil {
		t.Logf("%s: %d bytes", path, fi.Size())
	}
}
