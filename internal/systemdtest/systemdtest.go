// Package systemdtest runs a real systemd for tests, on machines where
// systemd is installed but is not PID 1 (a container, a CI runner): a
// systemd --user instance of root's, in a private mount namespace and a
// cgroup of its own.
package systemdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/nervehq/nerve/internal/privtest"
)

// Manager is a real systemd --user instance for one test, on a machine
// where systemd is installed but is not PID 1 (a container, a CI runner).
//
// systemd --user refuses to run unless /run/systemd/system exists, which is
// how it tells that systemd is the init system. The harness gives it one in a
// private mount namespace (a tmpfs on /run/systemd), so the host's
// /run/systemd is untouched. It runs in a cgroup v2 directory of its own,
// which it treats as its delegated subtree, and its own dbus.socket starts
// the session bus at $XDG_RUNTIME_DIR/bus when the harness first connects.
type Manager struct {
	BusAddress string
	runtime    string // its XDG_RUNTIME_DIR
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd.Wait has returned
	log        string        // the manager's stdout and stderr
}

// Start writes units (name, or drop-in path such as
// "x.service.d/y.conf", to file text) where the manager
// finds them, starts the manager and waits until it answers on the bus. It
// stops the manager, kills whatever it left, and removes its directories when
// the test ends, whether it passed or not.
func Start(t *testing.T, units map[string]string) *Manager {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "systemd", "unshare", "mount", "mknod", "mkfifo")

	// Cleanups run last-registered first: the manager is stopped (below)
	// before its cgroup is removed (privtest), before its directories are.
	base := t.TempDir()
	runtime, config, data := filepath.Join(base, "run"), filepath.Join(base, "config"), filepath.Join(base, "data")
	unitDir := filepath.Join(config, "systemd", "user")
	for _, d := range []string{runtime, unitDir, data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range units {
		// A name may be a drop-in: "x.service.d/override.conf".
		path := filepath.Join(unitDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, cgDir := privtest.Cgroup(t)
	cg, err := os.Open(cgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()

	m := &Manager{
		BusAddress: "unix:path=" + filepath.Join(runtime, "bus"),
		runtime:    runtime,
		done:       make(chan struct{}),
		log:        filepath.Join(base, "systemd.log"),
	}
	logFile, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	// sh execs systemd, so the manager is the process we started, and dies
	// with the namespace's only mount of the tmpfs.
	m.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", managerScript)
	m.cmd.Env = append(managerEnv(),
		"XDG_RUNTIME_DIR="+runtime,
		"XDG_CONFIG_HOME="+config,
		"XDG_DATA_HOME="+data,
		// Where StateDirectory=, CacheDirectory= and LogsDirectory= of user
		// units go (systemd 252 puts StateDirectory= in XDG_CONFIG_HOME),
		// rather than in root's home.
		"XDG_STATE_HOME="+filepath.Join(base, "state"),
		"XDG_CACHE_HOME="+filepath.Join(base, "cache"),
		"DBUS_SESSION_BUS_ADDRESS="+m.BusAddress,
		"SYSTEMD_LOG_TARGET=console",
	)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.SysProcAttr = &syscall.SysProcAttr{
		UseCgroupFD: true, // born in its cgroup: nothing of it ever runs elsewhere
		CgroupFD:    int(cg.Fd()),
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start systemd --user: %v", err)
	}
	// Ends when the manager exits; the cleanup makes sure it does.
	go func() {
		m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() { m.stop(t, cgDir) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.waitReady(ctx); err != nil {
		t.Fatalf("systemd --user did not come up: %v\n%s", err, m.Output())
	}
	return m
}

// managerScript starts the manager in its mount namespace: /run/systemd a
// tmpfs with an empty system/, and the inaccessible nodes PID 1 makes at
// boot, which services' sandboxes (ProtectHome=, ProtectKernelTunables=,
// ProtectKernelLogs=, InaccessiblePaths=) mount over what they hide.
const managerScript = `set -e
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/systemd/system /run/systemd/inaccessible
cd /run/systemd/inaccessible
mkdir -m 0 dir
install -m 0 /dev/null reg
mkfifo -m 0 fifo
mknod -m 0 chr c 0 0
mknod -m 0 blk b 0 0
cd /
exec systemd --user`

// managerEnv is this process's environment without what would tie the
// manager to another one: an outer manager's notify socket, our own bus.
func managerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "LISTEN_"),
			k == "DBUS_SESSION_BUS_ADDRESS", k == "NOTIFY_SOCKET", k == "MANAGERPID", k == "INVOCATION_ID":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady waits until the manager owns its name on the bus. The bus
// socket appears first (the manager listens on it for dbus.socket); the
// first connection starts dbus-daemon, and the manager then connects to it.
func (m *Manager) waitReady(ctx context.Context) error {
	var last error
	for {
		select {
		case <-m.done:
			return fmt.Errorf("the manager exited: %v", m.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
		conn, err := m.Connect(ctx)
		if err != nil {
			last = err
			continue
		}
		_, err = conn.GetManagerProperty("Version")
		conn.Close()
		if err == nil {
			return nil
		}
		last = err
	}
}

// Connect opens a connection to the manager; the caller closes it.
func (m *Manager) Connect(ctx context.Context) (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) { return dbus.Connect(m.BusAddress, dbus.WithContext(ctx)) })
}

// StartUnit starts a unit and waits for its job's result.
func (m *Manager) StartUnit(t *testing.T, unit string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := m.Connect(ctx)
	if err != nil {
		t.Fatalf("connect to the user manager: %v", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.StartUnitContext(ctx, unit, "replace", done); err != nil {
		t.Fatalf("start %s: %v", unit, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			t.Fatalf("start %s: job result %q\n%s\n%s", unit, r, m.Status(unit), m.Output())
		}
	case <-ctx.Done():
		t.Fatalf("start %s: %v", unit, ctx.Err())
	}
}

// stop asks the manager to exit (SIGTERM stops its units), kills what is
// left in its cgroup either way, and removes the cgroups it made under
// cgDir, leaving cgDir itself to privtest.
func (m *Manager) stop(t *testing.T, cgDir string) {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Errorf("systemd --user ignored SIGTERM for 10s; killing its cgroup")
	}
	if err := os.WriteFile(filepath.Join(cgDir, "cgroup.kill"), []byte("1"), 0o644); err != nil {
		t.Errorf("kill cgroup %s: %v", cgDir, err)
	}
	<-m.done
	if t.Failed() {
		t.Logf("systemd --user output:\n%s", m.Output())
	}
	var dirs []string
	filepath.WalkDir(cgDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != cgDir {
			dirs = append(dirs, p)
		}
		return nil
	})
	// Deepest first; a cgroup is removable only once its processes are reaped.
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 50; try++ {
			if err = os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", dirs[i], err)
		}
	}
}

// Output is the tail of the manager's own log.
func (m *Manager) Output() string {
	b, _ := os.ReadFile(m.log)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// Status is `systemctl --user status` of a unit, with its journal lines,
// for a failure message.
func (m *Manager) Status(unit string) string {
	cmd := exec.Command("systemctl", "--user", "status", "--no-pager", "--full", "--lines=40", unit)
	cmd.Env = append(managerEnv(), "XDG_RUNTIME_DIR="+m.runtime, "DBUS_SESSION_BUS_ADDRESS="+m.BusAddress)
	out, _ := cmd.CombinedOutput()
	return string(out)
}
