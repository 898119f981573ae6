package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The crash test runs the test binary again as a child (TestCrashChild) that
// runs, or resumes, a 4-step action; the child SIGKILLs itself after the
// checkpoint numbered by crashKillEnv. The parent then starts a child again
// and checks that every step ran exactly once.
const (
	crashDirEnv  = "NERVE_JOURNAL_CRASH_DIR"
	crashKillEnv = "NERVE_JOURNAL_CRASH_KILL_AT"
	crashSteps   = 4
	// A record is written once when the action is created, then before and
	// after each step.
	crashCheckpoints = 1 + 2*crashSteps
)

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashAtEveryCheckpoint as a child process")
	}
	j, err := Open(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	if s := os.Getenv(crashKillEnv); s != "" {
		killAt, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		j.afterWrite = func() {
			n++
			if n == killAt {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // SIGKILL cannot be caught; never reached
			}
		}
	}
	out := filepath.Join(dir, "out")
	var steps []Step
	for i := 1; i <= crashSteps; i++ {
		steps = append(steps, Step{Name: fmt.Sprintf("step%d", i), Do: func(context.Context) error {
			// Not idempotent on purpose: a repeated step shows as a
			// repeated line.
			f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintf(f, "step%d\n", i)
			return err
		}})
	}
	pending, err := j.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) > 0 {
		err = j.Resume(context.Background(), pending[0].ID, steps)
	} else {
		err = j.Run(context.Background(), "crash-1", steps)
	}
	if err != nil && !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
}

// runChild runs TestCrashChild and says whether it was SIGKILLed.
func runChild(t *testing.T, dir string, killAt int) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if killAt > 0 {
		cmd.Env = append(cmd.Env, crashKillEnv+"="+strconv.Itoa(killAt))
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("child (kill at %d): %v\n%s", killAt, err, out)
	}
	return false
}

// checkRanOnce checks that each step ran exactly once and the record shows
// the action done. rerun names the step whose started checkpoint was the
// last thing a killed child did: the record counts it started twice, though
// it ran once.
func checkRanOnce(t *testing.T, dir string, rerun string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "step1\nstep2\nstep3\nstep4\n"; string(got) != want {
		t.Errorf("steps ran:\n%s\nwant each once, in order:\n%s", got, want)
	}
	j, err := Open(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := j.Load("crash-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Done {
		t.Errorf("record state %s, want %s", r.State, Done)
	}
	for _, s := range r.Steps {
		want := 1
		if s.Name == rerun {
			want = 2
		}
		if s.State != Done || s.Runs != want {
			t.Errorf("step %s: state %s, runs %d; want done, %d", s.Name, s.State, s.Runs, want)
		}
	}
	if p, err := j.Pending(); err != nil || len(p) != 0 {
		t.Errorf("Pending() = %v, %v; want none", p, err)
	}
}

func TestCrashAtEveryCheckpoint(t *testing.T) {
	for killAt := 1; killAt <= crashCheckpoints; killAt++ {
		t.Run(fmt.Sprintf("kill_after_checkpoint_%d", killAt), func(t *testing.T) {
			dir := t.TempDir()
			if !runChild(t, dir, killAt) {
				t.Fatalf("child was not killed after checkpoint %d", killAt)
			}
			if runChild(t, dir, 0) {
				t.Fatal("restarted child was killed")
			}
			rerun := ""
			if killAt%2 == 0 {
				rerun = fmt.Sprintf("step%d", killAt/2)
			}
			checkRanOnce(t, dir, rerun)
		})
	}
}

// TestCrashOnEveryRestart kills every incarnation after its second
// checkpoint: the first dies after starting step1, each later one after
// finishing one step (its first checkpoint restarts that step).
func TestCrashOnEveryRestart(t *testing.T) {
	dir := t.TempDir()
	lives := 0
	for runChild(t, dir, 2) {
		lives++
		if lives > crashCheckpoints {
			t.Fatalf("still not finished after %d lives", lives)
		}
	}
	if want := 1 + crashSteps; lives != want {
		t.Errorf("killed %d times, want %d", lives, want)
	}
	checkRanOnce(t, dir, "step1")
}
