package actions

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
)

func TestHookEnvironmentAndOutput(t *testing.T) {
	script := fakeProgram(t, "hook", `echo "id=$NERVE_DECISION_ID kind=$NERVE_DIAGNOSIS token=$NERVE_LOCK_TOKEN extra=$EXTRA arg=$1"`+"\n")
	h := Hook{
		Argv: []string{script, "a b"},
		// An operator's Env cannot forge the token.
		Env: []string{"EXTRA=1", EnvLockToken + "=999"},
	}
	res, err := h.Run(context.Background(), HookCall{DecisionID: "d-42", Diagnosis: actuator.FailedDrive, LockToken: 7})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := res.Output, "id=d-42 kind=failed_drive token=7 extra=1 arg=a b\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code = %d, want 0", res.ExitCode)
	}
}

func TestHookBoundsOutput(t *testing.T) {
	script := fakeProgram(t, "hook", "head -c 100000 /dev/zero\n")
	res, err := Hook{Argv: []string{script}, MaxOutput: 1000}.Run(context.Background(), HookCall{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Output) != 1000 || res.Truncated != 99000 {
		t.Errorf("kept %d bytes, dropped %d; want 1000 and 99000", len(res.Output), res.Truncated)
	}
}

func TestHookFailure(t *testing.T) {
	script := fakeProgram(t, "hook", "echo 'cloud API: 403' >&2; exit 3\n")
	res, err := Hook{Argv: []string{script}}.Run(context.Background(), HookCall{DecisionID: "d-1"})
	if err == nil {
		t.Fatal("Run succeeded, want an error")
	}
	for _, s := range []string{script, "d-1", "exit status 3", "cloud API: 403"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.ExitCode)
	}
	if _, err := (Hook{}).Run(context.Background(), HookCall{}); err == nil {
		t.Error("a hook with no command ran")
	}
}

// A hook that times out is killed with its children: nothing it started
// keeps running after Run returns.
func TestHookTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	script := fakeProgram(t, "hook", "sleep 60 & echo $! > "+pidFile+"; wait\n")
	_, err := Hook{Argv: []string{script}, Timeout: 2 * time.Second}.Run(context.Background(), HookCall{})
	if err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Fatalf("Run error = %v, want killed after the timeout", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("pid file %q: the hook was killed before it wrote its child's pid (%v)", b, err)
	}
	// The child is not ours to reap: gone means no /proc entry or a zombie
	// waiting for init.
	for i := 0; i < 50; i++ {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the hook's child %s outlived the hook", pid)
}
