package packaging

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
)

func TestDebVersion(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-4-gabcdef0", "1.2.3+4.gabcdef0"},
		{"v1.2.3-4-gabcdef0-dirty", "1.2.3+4.gabcdef0.dirty"},
		{"v1.0.0-rc1", "1.0.0+rc1"},
		{"dev", "0.0.0~dev"},
		{"", "0.0.0"},
		{"0.0.0~test", "0.0.0~test"},
	} {
		if got := DebVersion(tt.in); got != tt.want {
			t.Errorf("DebVersion(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestConfig loads the packaged nerve.yml as the agent does, and checks
// that it keeps what the agent writes where the unit lets it write, and that
// the units name the files where the package installs them.
func TestConfig(t *testing.T) {
	cfg, err := agent.LoadConfig("nerve.yml", agent.Overrides{})
	if err != nil {
		t.Fatalf("packaging/nerve.yml does not load: %v", err)
	}
	u := readUnit(t, "systemd/nerve-agent.service")
	state := "/var/lib/" + u.one(t, "StateDirectory")
	for _, d := range []struct{ name, path string }{
		{"actuator.state_dir", cfg.Actuator.StateDir},
		{"actuator.dump_dir", cfg.Actuator.DumpDir},
	} {
		if d.path != state && !strings.HasPrefix(d.path, state+"/") {
			t.Errorf("%s is %s, outside the unit's StateDirectory %s, which is all the agent may write", d.name, d.path, state)
		}
	}
	files, err := Files(repoRoot, "bin/nerve")
	if err != nil {
		t.Fatal(err)
	}
	dst := map[string]string{}
	for _, f := range files {
		dst[f.Src] = f.Dst
	}
	for _, c := range []struct{ unit, want string }{
		{u.one(t, "ExecStart"), dst["bin/nerve"] + " agent --config.file=" + dst["packaging/nerve.yml"]},
	} {
		if c.unit != c.want {
			t.Errorf("agent ExecStart=%s, want %s", c.unit, c.want)
		}
	}
	m := readUnit(t, "systemd/nerve-manager.service")
	if exec := m.one(t, "ExecStart"); !strings.HasPrefix(exec, dst["bin/nerve"]+" manager run ") ||
		!strings.HasSuffix(exec, " @"+dst["packaging/manager.flags"]) {
		t.Errorf("manager ExecStart=%s: want %s manager run ... @%s", exec, dst["bin/nerve"], dst["packaging/manager.flags"])
	}
}

// TestMakeInstall checks that make install and the .deb install the same
// files, and that the units make install writes pass systemd-analyze verify
// (which needs ExecStart's binary to exist, so they go under a scratch
// PREFIX).
func TestMakeInstall(t *testing.T) {
	privtest.Tools(t, "make", "dpkg-deb", "systemd-analyze")
	bin := filepath.Join(t.TempDir(), "nerve")
	mk := func(t *testing.T, args ...string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-C", repoRoot, "install", "BIN=" + bin}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install %v: %v\n%s", args, err, out)
		}
	}

	t.Run("same files as the deb", func(t *testing.T) {
		dest := t.TempDir()
		mk(t, "DESTDIR="+dest, "PREFIX=/usr")
		deb, err := BuildDeb(DebOptions{Root: repoRoot, Bin: bin, Version: "0.0.0~test", Arch: "amd64", OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		data := t.TempDir()
		if out, err := exec.Command("dpkg-deb", "-x", deb, data).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
		}
		installed, packaged := tree(t, dest), tree(t, data)
		if !reflect.DeepEqual(installed, packaged) {
			t.Errorf("make install DESTDIR=... PREFIX=/usr and the .deb differ:\nmake install: %v\ndeb: %v", keys(installed), keys(packaged))
			for p, f := range installed {
				if g, ok := packaged[p]; ok && g != f {
					t.Errorf("%s: make install %s, deb %s", p, f.mode, g.mode)
				}
			}
		}
		files, err := Files(repoRoot, bin)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, f := range files {
			listed = append(listed, f.Dst)
		}
		if got, want := keys(packaged), sortedCopy(listed); !reflect.DeepEqual(got, want) {
			t.Errorf("the deb holds %v, Files lists %v", got, want)
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		prefix := t.TempDir()
		units := filepath.Join(prefix, "units")
		// DESTDIR=/ only keeps make install from reloading systemd.
		mk(t, "DESTDIR=/", "PREFIX="+prefix, "SYSCONFDIR="+filepath.Join(prefix, "etc"), "UNITDIR="+units)
		paths, _ := filepath.Glob(filepath.Join(units, "*.service"))
		if len(paths) != 2 {
			t.Fatalf("make install wrote units %v, want the agent's and the manager's", paths)
		}
		out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %v: %v\n%s", paths, err, out)
		}
	})
}

// file is an installed file as the comparison sees it.
type file struct {
	mode fs.FileMode
	hash string // the content itself; the files are small but one
}

// tree lists the regular files under root by their path below it.
func tree(t *testing.T, root string) map[string]file {
	t.Helper()
	out := map[string]file{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+rel] = file{mode: info.Mode(), hash: string(b)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]file) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestManagerUnit runs the manager unit's ExecStart with the packaged
// manager.flags as the unit would: as a user with no capabilities (what
// DynamicUser= and an empty CapabilityBoundingSet= give it), the token file
// handed over in a credentials directory (%d), its own state directory; in
// a network namespace of its own, so the flags' fixed loopback ports clash
// with nothing. It must become the leader of its one-replica cluster.
func TestManagerUnit(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "unshare", "setpriv", "ip")
	bin := nerveBinary(t)
	u := readUnit(t, "systemd/nerve-manager.service")
	if got := u.one(t, "CapabilityBoundingSet"); got != "" {
		t.Errorf("manager CapabilityBoundingSet=%s, want empty", got)
	}
	// Not t.TempDir, which only root may enter.
	dir, err := os.MkdirTemp("", "nerve-manager-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	creds, state := filepath.Join(dir, "credentials"), filepath.Join(dir, "state")
	for _, d := range []string{creds, state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	tokens := filepath.Join(creds, "tokens")
	if err := os.WriteFile(tokens, []byte("test-token\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	os.Chown(tokens, 65534, 65534)
	flags, err := filepath.Abs("manager.flags")
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Fields(u.one(t, "ExecStart"))
	argv[0] = bin
	for i, a := range argv {
		a = strings.ReplaceAll(a, "%d", creds)
		a = strings.ReplaceAll(a, "/var/lib/"+u.one(t, "StateDirectory"), state)
		a = strings.ReplaceAll(a, "@/etc/nerve/manager.flags", "@"+flags)
		argv[i] = a
	}
	script := `ip link set lo up && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"`
	cmd := exec.Command("unshare", append([]string{"--net", "sh", "-c", script, "sh"}, argv...)...)
	out := &nervetest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("%v:\n%s", argv, tail(out.String(), 4000))
		}
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), `msg="leader ready"`) {
		select {
		case err := <-done:
			t.Fatalf("manager exited: %v", err)
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatal("manager not leader within 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("manager stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Error("manager ignored SIGTERM for 15s")
	}
}

func TestPackageScripts(t *testing.T) {
	privtest.Tools(t, "shellcheck")
	scripts, _ := filepath.Glob("deb/*")
	if len(scripts) == 0 {
		t.Fatal("no package scripts under deb/")
	}
	if out, err := exec.Command("shellcheck", append([]string{"--shell=sh"}, scripts...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
