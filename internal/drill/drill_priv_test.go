package drill

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
)

// Every drill reaches its diagnosis, `all` takes under 5 minutes, slow_drive
// is seen within 10 s of the onset, and nothing is left behind.
func TestAll(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "java")
	scratch := filepath.Join(t.TempDir(), "drill")
	began := time.Now()
	rep, err := Run(context.Background(), Options{Drills: []string{"all"}, Scratch: scratch,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("all took %v:\n%s", took, b.String())
	if len(rep.Results) != len(Names) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(Names))
	}
	for _, r := range rep.Results {
		if !r.Passed {
			t.Errorf("%s: %s", r.Drill, r.Error)
		}
		if r.Reached != r.Expected {
			t.Errorf("%s: reached %q, want %q", r.Drill, r.Reached, r.Expected)
		}
		if r.Action == "" || r.Mode != "advise" {
			t.Errorf("%s: action %q in mode %q, want an action in advise mode", r.Drill, r.Action, r.Mode)
		}
		if r.Drill == "slow-disk" && !(r.TimeToDetect > 0 && r.TimeToDetect < 10*time.Second) {
			t.Errorf("slow-disk detected in %v, want under 10s", r.TimeToDetect)
		}
	}
	if !rep.Passed {
		t.Error("report says not every diagnosis matched")
	}
	if took > 5*time.Minute {
		t.Errorf("all took %v, want under 5m", took)
	}
	checkClean(t, scratch, nil)
}

// A drill stopped by SIGINT cleans up after itself; one killed by SIGKILL is
// cleaned up by the next run. The points of interruption are random.
func TestInterrupt(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup")
	bin := nervetest.Binary(t)
	random := func() time.Duration { return time.Duration(500+rand.IntN(20000)) * time.Millisecond }
	for i, tt := range []struct {
		drill string
		sig   syscall.Signal
		after time.Duration
	}{
		{"all", syscall.SIGINT, random()},
		{"all", syscall.SIGKILL, random()},
		{"all", syscall.SIGINT, random()},
		{"all", syscall.SIGKILL, random()},
		// The worst point: 128 readers queued on a FUSE-backed disk whose
		// server dies with the drill.
		{"disk-overload", syscall.SIGKILL, 3 * time.Second},
	} {
		sig, after := tt.sig, tt.after
		t.Run(tt.drill+"-"+sig.String()+"-"+after.String(), func(t *testing.T) {
			scratch := filepath.Join(t.TempDir(), "drill")
			cmd := exec.Command(bin, "drill", tt.drill, "--scratch", scratch)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(after)
			// What the drill has made so far, for the checks below.
			recs := records(scratch)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				t.Logf("run %d: %v after %v: %v; made %v", i, sig, after, err, recs)
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("drill still running 60s after %v:\n%s", sig, out.String())
			}
			if sig == syscall.SIGINT {
				checkClean(t, scratch, recs)
				return
			}
			recs = append(recs, records(scratch)...)
			// The next run cleans up what the killed one left.
			next := exec.Command(bin, "drill", "cpu-overload", "--scratch", scratch)
			b, err := next.CombinedOutput()
			if err != nil {
				t.Fatalf("next run: %v\n%s", err, b)
			}
			checkClean(t, scratch, recs)
		})
	}
}

// records lists what a run recorded in scratch: "pid N START" and cgroup
// directories.
func records(scratch string) []string {
	var out []string
	for _, l := range readLines(filepath.Join(scratch, procsFile)) {
		out = append(out, "pid "+l)
	}
	return append(out, readLines(filepath.Join(scratch, cgroupsFile))...)
}

// checkClean fails the test if anything of a drill in scratch is left: a
// loop device over its files, a mount under it, the directory, a recorded
// cgroup or process still there.
func checkClean(t *testing.T, scratch string, recs []string) {
	t.Helper()
	if _, err := os.Stat(scratch); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch directory %s still there (%v)", scratch, err)
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range loops {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), scratch) {
			t.Errorf("loop device %s still over %s", filepath.Base(filepath.Dir(filepath.Dir(f))), strings.TrimSpace(string(b)))
		}
	}
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	sc := bufio.NewScanner(mi)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 && strings.HasPrefix(f[4], scratch) {
			t.Errorf("mount still under the scratch directory: %s", sc.Text())
		}
	}
	for _, r := range recs {
		if pid, st, ok := parseProc(strings.TrimPrefix(r, "pid ")); strings.HasPrefix(r, "pid ") && ok {
			if alive(pid, st) {
				t.Errorf("process %d the drill started is still running", pid)
			}
			continue
		}
		if _, err := os.Stat(r); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s the drill made is still there (%v)", r, err)
		}
	}
}
