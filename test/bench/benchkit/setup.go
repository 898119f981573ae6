package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// ParseModes splits a comma-separated -tools list, keeping the first of each
// known mode in the order given. An empty list gives no modes and no error.
func ParseModes(list string, known ...string) ([]string, error) {
	var modes []string
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimSpace(m)
		switch {
		case m == "":
		case !slices.Contains(known, m):
			return nil, fmt.Errorf("unknown mode %q in -tools", m)
		case !slices.Contains(modes, m):
			modes = append(modes, m)
		}
	}
	return modes, nil
}

// NeedTools fails unless every named program is on PATH.
func NeedTools(names ...string) error {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s not on PATH (sudo make deps)", n)
		}
	}
	return nil
}

// BuildNerve builds ./cmd/nerve into path. Run it from the repository root.
func BuildNerve(ctx context.Context, path string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/nerve")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build nerve: %w", err)
	}
	return nil
}

// FreePort returns a loopback address no one listens on right now.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ExitDetail adds a failed command's stderr to its error.
func ExitDetail(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exit.Stderr)))
	}
	return err
}
