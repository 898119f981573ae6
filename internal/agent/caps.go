package agent

// After its probes are attached, the agent gives up every capability its
// configuration does not need any more: loading the BPF programs needs
// CAP_BPF and CAP_PERFMON (and tracefs, bpffs, memlock may need more), but
// reading their maps on Linux >= 6.5 needs nothing. What is still needed
// comes from the configuration: the JVM probe attaches uprobes to every new
// JVM while it runs (classic uprobes also need CAP_SYS_ADMIN, uprobe_multi
// links do not), rung 3 kills a JVM, the canary writes into data mounts.
//
// The capabilities are dropped from the bounding set too (when the agent
// holds CAP_SETPCAP, as nerve-agent.service gives it), so that programs the
// agent runs as root (nodetool, jcmd, hooks) cannot get them back at exec.
// packaging/caps_test.go checks the sets of the running binary.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
)

// capability is a Linux capability number, as in linux/capability.h.
type capability uint

const (
	capDACOverride   capability = 1
	capDACReadSearch capability = 2
	capKill          capability = 5
	capSetPCap       capability = 8
	capSysPtrace     capability = 19
	capSysAdmin      capability = 21
	capPerfmon       capability = 38
	capBPF           capability = 39
)

// capNames are the names of capabilities(7), by number.
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

func (c capability) String() string {
	if int(c) < len(capNames) {
		return capNames[c]
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// capSet is a set of capabilities as the kernel keeps it: bit n is
// capability n.
type capSet uint64

func (s capSet) has(c capability) bool { return s&(1<<c) != 0 }

func (s capSet) list() []capability {
	var out []capability
	for c := capability(0); c < 64; c++ {
		if s.has(c) {
			out = append(out, c)
		}
	}
	return out
}

func (s capSet) String() string {
	names := make([]string, 0, 8)
	for _, c := range s.list() {
		names = append(names, c.String())
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// neededCapabilities says which capabilities the agent needs once its probes
// are attached, each with why, from what cfg enables. release is the kernel
// release (uname -r); running reports whether a probe started (attached or
// on its fallback); jvmAttach is how the running JVM probe attaches
// (probe.AttachUprobeMulti or probe.AttachUprobe). Actions not named here
// (nodetool, systemd restarts over D-Bus, hooks, webhooks, the manager) need
// none: they go through sockets that check the uid. A hook that needs more
// should start a systemd unit.
func neededCapabilities(cfg *config.Config, release string, running func(probe string) bool, jvmAttach probe.AttachMode) map[capability][]string {
	need := map[capability][]string{}
	add := func(why string, caps ...capability) {
		for _, c := range caps {
			need[c] = append(need[c], why)
		}
	}
	if oldBPF(release) && (running("blockio") || running("runqueue") || running("pagefault") || running("jvm")) {
		// 6.5 moved the check from every bpf() command to map and program
		// creation ("bpf: Move unprivileged checks into map_create() and
		// bpf_prog_load()"); before it, reading a map at scrape time and
		// updating the target maps need CAP_BPF too.
		add("bpf() on the probes' maps needs CAP_BPF before Linux 6.5", capBPF)
	}
	if running("jvm") {
		add("jvm probe: attach uprobes to each new JVM", capBPF, capPerfmon)
		if jvmAttach != probe.AttachUprobeMulti {
			// uprobe_multi links (Linux >= 6.6) go through bpf(), not the
			// perf uprobe PMU.
			add("jvm probe: classic uprobes need CAP_SYS_ADMIN (kernel commit ba677dbe77af; probes.jvm.attach is uprobe, or the kernel has no uprobe_multi)", capSysAdmin)
		}
		add("jvm probe: read /proc/<pid>/maps and /proc/<pid>/root of other users' JVMs", capSysPtrace)
		add("jvm probe: read other users' hsperfdata (JVMs without USDT probes)", capDACReadSearch)
	}
	if cfg.Flight.Enabled {
		if running("pagefault") {
			add("flight recorder: name the file of a page-fault outlier from /proc/<pid>/maps of any user's process", capSysPtrace)
		}
		if running("blockio") || running("runqueue") || running("pagefault") {
			add("flight recorder: name an outlier's cgroup by its handle, also after the process is gone", capDACReadSearch)
		}
	}
	for _, t := range cfg.Targets {
		if t.Process != "" {
			add("targets: match processes by executable (/proc/<pid>/exe) across users", capSysPtrace)
			break
		}
	}
	ac := cfg.Actuator
	if ac.Enabled && len(ac.DataMounts) > 0 {
		add("canary: write a file in each data mount, owned by the database's user", capDACOverride)
	}
	if ac.Enabled && ac.Mode == "enforce" && ac.Rungs[3] == "enforce" {
		add("rung 3 (jvmquake): jcmd signals the JVM and connects to its attach socket, then SIGKILL",
			capKill, capDACOverride, capSysPtrace)
	}
	return need
}

// oldBPF reports whether release is older than Linux 6.5; an unparsable
// release counts as old, which only keeps CAP_BPF.
func oldBPF(release string) bool {
	major, rest, _ := strings.Cut(release, ".")
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i] // "6.1.0-13-amd64", "6.10rc1"
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return true
	}
	return ma < 6 || ma == 6 && mi < 5
}

// errCgo is returned when the capabilities of all threads cannot be changed
// together: the Go runtime can only do it in binaries built without cgo.
var errCgo = errors.New("the binary uses cgo, so the capabilities of all its threads cannot be changed (build with CGO_ENABLED=0, as make build does)")

// dropCapabilities drops every capability cfg does not need, logs what it
// kept and why (nerve_agent_capabilities shows the result). Failing to drop is
// logged, not fatal: the unit's bounding set is the real boundary, this
// narrows it further.
func (a *agent) dropCapabilities(cfg *config.Config) {
	var u unix.Utsname
	unix.Uname(&u)
	var jvmAttach probe.AttachMode
	for _, sp := range a.probes.probes {
		if j, ok := sp.probe.(interface{ AttachMode() probe.AttachMode }); ok && sp.name == "jvm" {
			jvmAttach = j.AttachMode()
		}
	}
	need := neededCapabilities(cfg, unix.ByteSliceToString(u.Release[:]), func(name string) bool {
		for _, sp := range a.probes.probes {
			if sp.name == name {
				return sp.probe != nil
			}
		}
		return false
	}, jvmAttach)
	var want capSet
	for c := range need {
		want |= 1 << c
	}
	before, after, err := applyCapabilities(want)
	if err != nil {
		a.logger.Warn("capabilities not dropped", "held", before, "err", err)
		return
	}
	a.logger.Info("capabilities dropped", "kept", after.permitted, "dropped", before.permitted&^after.permitted,
		"bounding", after.bounding)
	if extra := after.bounding &^ after.permitted; extra != 0 {
		a.logger.Warn("bounding set not shrunk (no CAP_SETPCAP): programs the agent runs as root get these back unless no_new_privs is set",
			"caps", extra)
	}
	for _, c := range want.list() {
		why := strings.Join(need[c], "; ")
		if !after.permitted.has(c) {
			a.logger.Warn("capability needed but not held; what needs it will fail", "cap", c, "why", why)
			continue
		}
		a.logger.Info("capability kept", "cap", c, "why", why)
	}
}

// capState is the calling thread's capability sets.
type capState struct {
	effective, permitted, inheritable, bounding capSet
}

func (s capState) String() string { return s.permitted.String() }

func readCapabilities() (capState, error) {
	var st capState
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return st, fmt.Errorf("capget: %w", err)
	}
	join := func(lo, hi uint32) capSet { return capSet(lo) | capSet(hi)<<32 }
	st.effective = join(data[0].Effective, data[1].Effective)
	st.permitted = join(data[0].Permitted, data[1].Permitted)
	st.inheritable = join(data[0].Inheritable, data[1].Inheritable)
	for c := capability(0); c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			break // EINVAL past the kernel's last capability
		}
		if in == 1 {
			st.bounding |= 1 << c
		}
	}
	return st, nil
}

// applyCapabilities leaves every thread of the process with at most keep in
// its bounding, permitted and effective sets (and so in its inheritable and
// ambient sets), and returns the sets before and after. The bounding set
// shrinks only when CAP_SETPCAP is effective; it is dropped last.
func applyCapabilities(keep capSet) (before, after capState, err error) {
	before, err = readCapabilities()
	if err != nil {
		return before, before, err
	}
	keep &= before.permitted
	if before.bounding.has(capSetPCap) && before.effective.has(capSetPCap) {
		for _, c := range (before.bounding &^ keep).list() {
			if c == capSetPCap {
				continue
			}
			if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); errno != 0 {
				return before, before, capsErr("drop "+c.String()+" from the bounding set", errno)
			}
		}
		if !keep.has(capSetPCap) {
			if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(capSetPCap), 0); errno != 0 {
				return before, before, capsErr("drop CAP_SETPCAP from the bounding set", errno)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	inh := before.inheritable & keep
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep), Inheritable: uint32(inh)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32), Inheritable: uint32(inh >> 32)},
	}
	// The kernel also clears each ambient capability that leaves the
	// permitted set.
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return before, before, capsErr("capset", errno)
	}
	after, err = readCapabilities()
	return before, after, err
}

func capsErr(what string, errno syscall.Errno) error {
	if errno == syscall.ENOTSUP {
		return errCgo
	}
	return fmt.Errorf("%s: %w", what, errno)
}

// capsCollector exports the capabilities the process holds, read from
// /proc/self/status at scrape time: the main thread's, which are every
// thread's since the drop changes all of them.
type capsCollector struct{}

var capsDesc = prometheus.NewDesc("nerve_agent_capabilities",
	"1 for each capability the agent holds, by set: effective (what it can use now) and bounding (the most any program it runs can get). After the probes attach, the agent drops what its configuration does not need.",
	[]string{"set", "cap"}, nil)

func (capsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- capsDesc }

func (capsCollector) Collect(ch chan<- prometheus.Metric) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(capsDesc, err)
		return
	}
	defer f.Close()
	sets, err := parseStatusCaps(f)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(capsDesc, err)
		return
	}
	names := make([]string, 0, len(sets))
	for set := range sets {
		names = append(names, set)
	}
	sort.Strings(names)
	for _, set := range names {
		for _, c := range sets[set].list() {
			ch <- prometheus.MustNewConstMetric(capsDesc, prometheus.GaugeValue, 1, set, c.String())
		}
	}
}

// parseStatusCaps reads the CapEff and CapBnd lines of proc(5)
// /proc/<pid>/status.
func parseStatusCaps(r io.Reader) (map[string]capSet, error) {
	lines := map[string]string{"CapEff": "effective", "CapBnd": "bounding"}
	out := map[string]capSet{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		set, want := lines[name]
		if !ok || !want {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", name, strings.TrimSpace(value), err)
		}
		out[set] = capSet(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) != len(lines) {
		return nil, errors.New("no CapEff or CapBnd line in /proc/self/status")
	}
	return out, nil
}
