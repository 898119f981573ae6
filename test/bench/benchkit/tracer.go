package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tracer is a running tracing tool: the nerve agent, or a libbpf-tools
// program such as biolatency or runqlat. Its methods are called from one
// goroutine.
type Tracer struct {
	Name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done closes
	stopped bool          // Stop signalled the process
}

// StartTracer starts cmd with its output going to a new file at logPath.
// Stop the tracer when done with it, also after an error of any other method.
func StartTracer(name string, cmd *exec.Cmd, logPath string) (*Tracer, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t := &Tracer{Name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	// This goroutine ends when the process exits; Stop makes sure it does.
	go func() {
		t.waitErr = cmd.Wait()
		close(t.done)
	}()
	return t, nil
}

// Exited reports whether the process exited on its own.
func (t *Tracer) Exited() bool {
	select {
	case <-t.done:
		return !t.stopped
	default:
		return false
	}
}

// WaitHealthy polls url until it answers 200 OK, the process exits, ctx ends
// or limit passes.
func (t *Tracer) WaitHealthy(ctx context.Context, url string, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-t.done:
			return fmt.Errorf("%s exited before %s answered: %v: %s", t.Name, url, t.waitErr, t.Tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v: %s", url, limit, t.Tail())
		}
	}
}

// Stop sends SIGINT (libbpf-tools print their histograms then; the agent
// shuts down) and kills the process if it has not exited after 10 s. It
// returns nil when the process had already exited; calling it again is safe.
func (t *Tracer) Stop() error {
	select {
	case <-t.done:
		return nil
	default:
	}
	t.stopped = true
	t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
		return errors.New("killed after 10s without exiting on SIGINT")
	}
	var exit *exec.ExitError
	if errors.As(t.waitErr, &exit) && exit.ExitCode() > 0 {
		return t.waitErr
	}
	return nil
}

// Output is everything the tracer printed so far.
func (t *Tracer) Output() string {
	b, _ := os.ReadFile(t.logPath)
	return strings.TrimSpace(string(b))
}

// Tail is the end of the tracer's output, for error messages.
func (t *Tracer) Tail() string {
	out := t.Output()
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	if out == "" {
		return "(no output)"
	}
	return out
}

// ProgIDs returns the BPF programs the tracer holds, as program or link file
// descriptors. bpftool's pids field would say the same, but only when bpftool
// was built with skeletons, and Debian 12's is not.
func (t *Tracer) ProgIDs() (map[uint32]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", t.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ids := map[uint32]bool{}
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[uint32(id)] = true
				}
			}
		}
	}
	return ids, nil
}

// WaitForPrograms waits until the tracer holds BPF programs and their set has
// not changed for a second, so that a load starts with everything attached.
func (t *Tracer) WaitForPrograms(ctx context.Context) error {
	const limit = 20 * time.Second
	deadline := time.Now().Add(limit)
	var last []uint32
	var stableSince time.Time
	for {
		held, err := t.ProgIDs()
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		ids := slices.Sorted(maps.Keys(held))
		if len(ids) > 0 && slices.Equal(ids, last) {
			if time.Since(stableSince) >= time.Second {
				return nil
			}
		} else {
			last, stableSince = ids, time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s loaded no BPF programs within %v: %s", t.Name, limit, t.Tail())
		}
		select {
		case <-t.done:
			return fmt.Errorf("%s exited: %v: %s", t.Name, t.waitErr, t.Tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Measure runs load once the tracer's programs are attached and returns what
// each of them did while load ran. It fails when the tracer exits before
// load returns; load's own error is returned as it is.
func (t *Tracer) Measure(ctx context.Context, load func() error) ([]ProgDelta, error) {
	if err := t.WaitForPrograms(ctx); err != nil {
		return nil, err
	}
	before, err := ProgSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	if err := load(); err != nil {
		return nil, err
	}
	after, err := ProgSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := t.ProgIDs()
	if err != nil || t.Exited() {
		return nil, fmt.Errorf("%s exited during the run: %s", t.Name, t.Tail())
	}
	return Deltas(ids, before, after), nil
}
