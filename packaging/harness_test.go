package packaging

// What the packaging tests share: the nerve binary, built once; unit files
// read the way systemd reads them (enough of it for these units); and the
// agent and a JVM started the way the unit and a database would start them.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
)

// repoRoot is the source tree: this package's parent.
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd)
}()

var binDir string // TestMain's scratch directory for the binary

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "nerve-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Others may enter it: the JVMs and the manager run as nobody.
	os.Chmod(d, 0o755)
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// nerveBinary builds cmd/nerve once per test run, as make build does
// (CGO_ENABLED=0, which the capability drop needs), into a scratch directory
// rather than bin/, which other builds share.
func nerveBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { builtBin, buildErr = nervetest.Build(binDir) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// unit is a unit file's settings: the values of each key in file order, the
// way systemd reads them (comments and blank lines skipped, a trailing
// backslash continues the line). Sections are not kept apart; no key of
// these units appears in two.
type unit map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	var cont string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if cont == "" && (line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", path, line)
		}
		u[strings.TrimSpace(k)] = append(u[strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u
}

// one is the value of a key set once.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("unit sets %s %d times, want once: %q", key, len(u[key]), u[key])
	}
	return u[key][0]
}

// caps is the unit's CapabilityBoundingSet as setpriv names capabilities:
// "bpf" for CAP_BPF.
func (u unit) caps(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, c := range strings.Fields(u.one(t, "CapabilityBoundingSet")) {
		out = append(out, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return out
}

// without is caps less the named ones.
func without(caps []string, drop ...string) []string {
	var out []string
next:
	for _, c := range caps {
		for _, d := range drop {
			if c == d {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// sandboxScript runs its arguments as root with only the capabilities in
// $CAPS (setpriv names, comma-separated) in the bounding set (root has
// exactly those then), in a private mount namespace made to look like the
// agent unit's: / read-only (ProtectSystem=strict) except the directories
// in $RW (ReadWritePaths=, StateDirectory=), and /home, /root and /run/user
// empty and inaccessible (ProtectHome=yes). $BINDS, SRC=DST pairs, puts a
// scratch directory where the unit's StateDirectory would be, so the host's
// stays untouched. The last exec keeps the pid, so the process started is
// the agent.
const sandboxScript = `set -e
for d in /home /root /run/user; do
	if [ -d "$d" ]; then mount -t tmpfs -o mode=000 tmpfs "$d"; fi
done
for b in $BINDS; do mount --bind "${b%%=*}" "${b#*=}"; done
for d in $RW; do mount --bind "$d" "$d"; done
mount -o remount,bind,ro /
bset=-all
for c in $(echo "$CAPS" | tr , ' '); do bset="$bset,+$c"; done
exec setpriv --inh-caps=-all --bounding-set="$bset" -- "$@"`

// agentProc is a running agent.
type agentProc struct {
	cmd  *exec.Cmd
	addr string
	out  *nervetest.SyncBuffer
	done chan struct{} // closed when cmd.Wait has returned
	err  error         // cmd.Wait's; read after done
}

// sandbox is what sandboxScript leaves writable: rw, and binds (SRC=DST).
type sandbox struct{ rw, binds []string }

// startAgent runs argv (an agent command line, without
// --web.listen-address, which it adds) in the sandbox of sandboxScript, with
// caps, and waits until it serves /healthz. It returns nil, with the
// agent's output, if the agent exits first. The agent is stopped when the
// test ends.
func startAgent(t *testing.T, argv []string, caps []string, sb sandbox) (*agentProc, string) {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "unshare", "setpriv", "mount")
	a := &agentProc{addr: nervetest.FreeAddr(t), out: &nervetest.SyncBuffer{}, done: make(chan struct{})}
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", sandboxScript, "sh"}, argv...)
	args = append(args, "--web.listen-address="+a.addr)
	a.cmd = exec.Command("unshare", args...)
	a.cmd.Env = append(os.Environ(), "CAPS="+strings.Join(caps, ","), "RW="+strings.Join(sb.rw, " "),
		"BINDS="+strings.Join(sb.binds, " "))
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Ends when the agent exits; the cleanup makes sure it does.
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent %v output:\n%s", caps, tail(a.out.String(), 6000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return nil, a.out.String()
		case <-time.After(100 * time.Millisecond):
		}
		if healthy(a.addr) {
			return a, ""
		}
	}
	t.Fatalf("agent did not serve /healthz within 60s")
	return nil, ""
}

// stop sends SIGTERM and waits; SIGKILL after 15 s. It returns the exit
// error: nil after a clean stop.
func (a *agentProc) stop(t *testing.T) error {
	select {
	case <-a.done:
		return a.err
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		t.Errorf("agent ignored SIGTERM for 15s; killing it")
		a.cmd.Process.Kill()
		<-a.done
	}
	return a.err
}

func (a *agentProc) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	return string(b)
}

// waitMetric scrapes until a sample line matches re, and returns the match.
func (a *agentProc) waitMetric(t *testing.T, re string, within time.Duration) ([]string, bool) {
	t.Helper()
	rx := regexp.MustCompile("(?m)" + re)
	deadline := time.Now().Add(within)
	for {
		if m := rx.FindStringSubmatch(a.metrics(t)); m != nil {
			return m, true
		}
		if time.Now().After(deadline) {
			return nil, false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// value scrapes once and returns the number re's first group matches.
func (a *agentProc) value(t *testing.T, re string) float64 {
	t.Helper()
	m := regexp.MustCompile("(?m)" + re).FindStringSubmatch(a.metrics(t))
	if m == nil {
		t.Fatalf("no sample matches /%s/", re)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// status reads a capability line of the agent's /proc/<pid>/status
// ("CapEff", "CapBnd") as setpriv names, sorted.
func (a *agentProc) status(t *testing.T, line string) []string {
	t.Helper()
	v, ok := procStatus(t, uint32(a.cmd.Process.Pid))[line]
	if !ok {
		t.Fatalf("no %s in /proc/%d/status", line, a.cmd.Process.Pid)
	}
	return capNames(hexField(t, v))
}

// capBits are the capabilities the tests name, by number.
var capBits = map[uint]string{1: "dac_override", 2: "dac_read_search", 5: "kill", 8: "setpcap",
	19: "sys_ptrace", 21: "sys_admin", 38: "perfmon", 39: "bpf"}

func capNames(set uint64) []string {
	var out []string
	for n := uint(0); n < 64; n++ {
		if set&(1<<n) == 0 {
			continue
		}
		name, ok := capBits[n]
		if !ok {
			name = "cap_" + strconv.Itoa(int(n))
		}
		out = append(out, name)
	}
	return sortedCopy(out)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// classDir compiles the test JVMs into a directory that any user can read.
var (
	classOnce sync.Once
	classPath string
)

func jvmClasses(t *testing.T) string {
	t.Helper()
	classOnce.Do(func() {
		d := filepath.Join(binDir, "classes")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		javatest.Compile(t, d, "SafepointLoop.java")
		classPath = d
	})
	if classPath == "" {
		t.Fatal("test JVM classes not compiled")
	}
	return classPath
}

// jvmProc is a running test JVM.
type jvmProc struct {
	pid  int
	done chan struct{}
}

// startJVM runs SafepointLoop as nobody, as a database runs as its own user,
// in the cgroup cgDir, from a JDK that only its own mount namespace has,
// under /home/jdk: a JVM the agent can find only through /proc/<pid>/root,
// as it must when /home is hidden from it (ProtectHome=yes) or the JVM runs
// in a container. It is killed when the test ends.
func startJVM(t *testing.T, cgDir string) *jvmProc {
	t.Helper()
	privtest.Tools(t, "java", "unshare", "setpriv")
	classes := jvmClasses(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatal(err)
	}
	java, err = filepath.EvalSymlinks(java)
	if err != nil {
		t.Fatal(err)
	}
	jdk := filepath.Dir(filepath.Dir(java))
	script := `set -e
mount -t tmpfs tmpfs /home
mkdir /home/jdk
mount --bind "$JDK" /home/jdk
cd /tmp
exec setpriv --reuid=65534 --regid=65534 --clear-groups /home/jdk/bin/java -Xmx64m -XX:+UseSerialGC -cp "$CLASSES" SafepointLoop 300`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "JDK="+jdk, "CLASSES="+classes)
	out := &nervetest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cg, err := os.Open(cgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &jvmProc{pid: cmd.Process.Pid, done: make(chan struct{})}
	// Ends when the JVM exits; the cleanup kills it.
	go func() {
		cmd.Wait()
		close(j.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-j.done
		if t.Failed() {
			t.Logf("JVM %d output:\n%s", j.pid, tail(out.String(), 2000))
		}
	})
	// Wait until the JVM has mapped libjvm.so, which is what the agent's scan
	// looks for.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", j.pid)); err == nil && bytes.Contains(b, []byte("/home/jdk/lib/server/libjvm.so")) {
			return j
		}
		select {
		case <-j.done:
			t.Fatalf("JVM exited early:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("JVM %d did not map libjvm.so within 20s:\n%s", j.pid, out.String())
	return nil
}
