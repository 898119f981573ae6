package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// defaultMaxOutput bounds what a command's output keeps for the report.
const defaultMaxOutput = 64 << 10

// CommandResult is what a command run by Nodetool or Hook did.
type CommandResult struct {
	Argv     []string
	ExitCode int    // -1 when it did not exit on its own (killed, timed out)
	Output   string // stdout and stderr interleaved, at most the first MaxOutput bytes
	// Truncated counts the output bytes dropped past the limit.
	Truncated int64
	Duration  time.Duration
}

// runCommand runs argv (no shell) with env appended to the agent's own
// environment, bounded by ctx and timeout (none when 0). On timeout the whole
// process group is killed, so a script's children do not outlive it. A
// non-zero exit is an error; the result holds the output either way. Errors
// do not repeat argv: the caller names what it ran.
func runCommand(ctx context.Context, argv, env []string, timeout time.Duration, maxOutput int) (CommandResult, error) {
	return runCommandTo(ctx, nil, argv, env, timeout, maxOutput)
}

// runCommandTo is runCommand with stdout sent to w (when not nil) and only
// stderr kept in the result: for output too large to hold, a thread dump.
func runCommandTo(ctx context.Context, w io.Writer, argv, env []string, timeout time.Duration, maxOutput int) (CommandResult, error) {
	res := CommandResult{Argv: argv, ExitCode: -1}
	if len(argv) == 0 || argv[0] == "" {
		return res, errors.New("no command")
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if maxOutput <= 0 {
		maxOutput = defaultMaxOutput
	}
	out := &headBuffer{max: maxOutput}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if w != nil {
		cmd.Stdout = w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild that keeps the output pipe open must not hold Wait forever.
	cmd.WaitDelay = time.Second

	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output, res.Truncated = out.result()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("killed after %v: %w", res.Duration.Round(time.Millisecond), ctx.Err())
	case res.ExitCode > 0:
		return res, fmt.Errorf("exit status %d: %q", res.ExitCode, lastLine(res.Output))
	default:
		return res, err // exec's own error names the program: not found, not executable
	}
}

// lastLine is the last non-empty line of s, at most 200 bytes: usually what
// a failing command said about why.
func lastLine(s string) string {
	b := bytes.TrimSpace([]byte(s))
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// headBuffer keeps the first max bytes written and counts the rest; the
// command's stdout and stderr copiers write to it concurrently.
type headBuffer struct {
	max int

	mu      sync.Mutex
	buf     []byte // guarded by mu
	dropped int64  // guarded by mu
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.max-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	b.dropped += int64(len(p) - n)
	return len(p), nil
}

func (b *headBuffer) result() (string, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf), b.dropped
}
