package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

// TestMain lets a test run this binary's main: with NERVE_TEST_MAIN=1 the
// test binary is nerve, so that kingpin's --help, which exits the process,
// can be tested in a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("NERVE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// commands lists every command of the model, subcommands after their
// parent, hidden ones included.
func commands(cs []*kingpin.CmdModel) []*kingpin.CmdModel {
	var out []*kingpin.CmdModel
	for _, c := range cs {
		out = append(out, c)
		out = append(out, commands(c.Commands)...)
	}
	return out
}

// Every command, flag and argument must say what it is for: --help and
// docs/cli.md are made from these strings.
func TestHelpComplete(t *testing.T) {
	app := newCLI().app.Model()
	if strings.TrimSpace(app.Help) == "" {
		t.Error("the application has no help")
	}
	for _, f := range app.Flags {
		if strings.TrimSpace(f.Help) == "" {
			t.Errorf("flag --%s has no help", f.Name)
		}
	}
	for _, c := range commands(app.Commands) {
		if strings.TrimSpace(c.Help) == "" {
			t.Errorf("command %q has no help", c.FullCommand)
		}
		for _, f := range c.Flags {
			if strings.TrimSpace(f.Help) == "" {
				t.Errorf("flag --%s of %q has no help", f.Name, c.FullCommand)
			}
		}
		for _, a := range c.Args {
			if strings.TrimSpace(a.Help) == "" {
				t.Errorf("argument <%s> of %q has no help", a.Name, c.FullCommand)
			}
		}
	}
}

// The exit status is part of the interface: `nerve --help` says what each
// code means, and says what run returns.
func TestHelpNamesExitCodes(t *testing.T) {
	help := newCLI().app.Model().Help
	for code, what := range map[int]string{exitOK: "Exit status 0:", exitFailure: "Exit status 1:", exitUsage: "Exit status 2:"} {
		if !strings.Contains(help, what) {
			t.Errorf("the application help does not explain exit status %d (want %q)", code, what)
		}
	}
}

// runNerve runs this test binary as nerve with args.
func runNerve(t *testing.T, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NERVE_TEST_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run nerve %v: %v", args, err)
	}
	if errOut.Len() > 0 {
		t.Logf("nerve %v: stderr: %s", args, errOut.String())
	}
	return out.String(), code
}

// `nerve --help` and `nerve <command> --help` exit 0 and name every flag
// (and argument) that applies: the global ones, the parent commands', the
// command's own.
func TestHelpOutput(t *testing.T) {
	app := newCLI().app.Model()
	type scope struct {
		args  []string
		flags []*kingpin.FlagModel
		cmd   *kingpin.CmdModel
	}
	scopes := []scope{{args: []string{"--help"}, flags: app.Flags}}
	var walk func(parent []string, inherited []*kingpin.FlagModel, cs []*kingpin.CmdModel)
	walk = func(parent []string, inherited []*kingpin.FlagModel, cs []*kingpin.CmdModel) {
		for _, c := range cs {
			path := append(append([]string(nil), parent...), c.Name)
			flags := append(append([]*kingpin.FlagModel(nil), inherited...), c.Flags...)
			scopes = append(scopes, scope{args: append(append([]string(nil), path...), "--help"), flags: flags, cmd: c})
			walk(path, flags, c.Commands)
		}
	}
	walk(nil, app.Flags, app.Commands)
	for _, s := range scopes {
		t.Run(strings.Join(s.args, " "), func(t *testing.T) {
			t.Parallel()
			out, code := runNerve(t, s.args...)
			if code != exitOK {
				t.Fatalf("exit status %d, want 0", code)
			}
			if !strings.HasPrefix(out, "usage: nerve") {
				t.Errorf("output does not start with the usage:\n%s", out)
			}
			for _, f := range s.flags {
				if f.Hidden {
					continue
				}
				if !strings.Contains(out, "--"+f.Name) && !strings.Contains(out, "--[no-]"+f.Name) {
					t.Errorf("output does not name --%s:\n%s", f.Name, out)
				}
			}
			if s.cmd == nil {
				return
			}
			for _, a := range s.cmd.Args {
				if !strings.Contains(out, "<"+a.Name+">") {
					t.Errorf("output does not name <%s>:\n%s", a.Name, out)
				}
			}
			if first, _, _ := strings.Cut(strings.TrimSpace(s.cmd.Help), "."); !strings.Contains(strings.Join(strings.Fields(out), " "), first) {
				t.Errorf("output does not hold the command's help %q:\n%s", first, out)
			}
		})
	}
}
