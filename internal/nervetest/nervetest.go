// Package nervetest holds what end-to-end tests need to run the real nerve
// binary: a build of cmd/nerve made as `make build` makes it, free loopback
// addresses to serve on, and a buffer for a process's output that a test can
// read while the process writes.
package nervetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Build builds cmd/nerve into dir as `make build` does (CGO_ENABLED=0, which
// the agent's capability drop needs; -trimpath) and returns its path. The go
// command is the one on PATH, else the one of the running toolchain.
func Build(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "nerve")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, "github.com/nervehq/nerve/cmd/nerve")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/nerve: %v\n%s", err, out)
	}
	return bin, nil
}

// Binary builds cmd/nerve into the test's temporary directory; the build
// cache makes every build after the first a link.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// FreeAddr returns a loopback address (host:port) that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer is a process's output, safe to read while the process writes it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
