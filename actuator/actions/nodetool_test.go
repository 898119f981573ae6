package actions

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProgram writes an executable shell script named name into a temporary
// directory and returns its path.
func fakeProgram(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNodetoolPassesArgv(t *testing.T) {
	record := filepath.Join(t.TempDir(), "argv")
	// One argument per line, so the test sees exactly what exec passed.
	path := fakeProgram(t, "nodetool", `for a in "$@"; do printf '%s\n' "$a" >> "`+record+`"; done; echo ok`)

	tests := []struct {
		name string
		n    Nodetool
		want []string
	}{
		{"throughput", SetCompactionThroughput(path, 16), []string{"setcompactionthroughput", "16"}},
		{"compactors", SetConcurrentCompactors(path, 1), []string{"setconcurrentcompactors", "1"}},
		// Nothing is interpreted by a shell: metacharacters arrive as written.
		{"no shell", Nodetool{Path: path, Args: []string{"x; touch /tmp/pwned", "$(id)"}}, []string{"x; touch /tmp/pwned", "$(id)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(record)
			res, err := tt.n.Run(context.Background())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			b, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("argv = %q, want %q", got, tt.want)
			}
			if res.ExitCode != 0 || res.Output != "ok\n" {
				t.Errorf("result = exit %d output %q, want exit 0 output %q", res.ExitCode, res.Output, "ok\n")
			}
		})
	}
}

func TestNodetoolErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "nodetool")
	failing := fakeProgram(t, "nodetool", "echo 'nodetool: Failed to connect to 127.0.0.1:7199' >&2; exit 1\n")
	slow := fakeProgram(t, "nodetool", "sleep 30\n")

	tests := []struct {
		name     string
		n        Nodetool
		contains []string
	}{
		{"missing binary", Nodetool{Path: missing, Args: []string{"status"}}, []string{missing, "no such file"}},
		{"missing on PATH", Nodetool{Path: "nerve-no-such-nodetool"}, []string{"nerve-no-such-nodetool", "not found"}},
		{"exit status", Nodetool{Path: failing, Args: []string{"status"}}, []string{"exit status 1", "Failed to connect"}},
		{"timeout", Nodetool{Path: slow, Timeout: 200 * time.Millisecond}, []string{"killed after", "deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := tt.n.Run(context.Background())
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %v: the timeout did not hold", d)
			}
		})
	}
}
