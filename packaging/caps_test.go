package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/features"

	"github.com/nervehq/nerve/internal/privtest"
)

// capsConfig is an agent configuration for one case: its state in state,
// one target, the cgroup cgRel, and the options.
type capsConfig struct {
	state, cgRel string
	jvmOff       bool   // the JVM probe and the flight recorder off
	uprobes      bool   // the JVM probe forced to classic uprobes (probes.jvm.attach: uprobe)
	rung3        bool   // rung 3 (jvmquake) enforced
	dataMount    string // one data mount, or none
}

func (c capsConfig) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "actuator:\n  state_dir: %s\n  dump_dir: %s/dumps\n", c.state, c.state)
	if c.rung3 {
		b.WriteString("  rungs: {1: enforce, 2: enforce, 3: enforce, 4: advise, 5: advise}\n")
	}
	if c.dataMount != "" {
		fmt.Fprintf(&b, "  data_mounts: [%s]\n", c.dataMount)
	}
	if c.jvmOff {
		// The flight recorder too: it keeps CAP_SYS_PTRACE and
		// CAP_DAC_READ_SEARCH to name outliers' files and cgroups.
		b.WriteString("probes:\n  jvm:\n    enabled: false\nflight:\n  enabled: false\n")
	}
	if c.uprobes {
		b.WriteString("probes:\n  jvm:\n    attach: uprobe\n")
	}
	fmt.Fprintf(&b, "targets:\n  - name: nvjvm\n    cgroup: %s\n", c.cgRel)
	path := filepath.Join(t.TempDir(), "nerve.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// What the agent keeps after attach (setpriv names, sorted), by
// configuration: the JVM probe's needs on uprobe_multi links, and rung 3's
// on top. Classic uprobes need sys_admin too (withUprobes).
var (
	keptJVM   = []string{"bpf", "dac_read_search", "perfmon", "sys_ptrace"}
	keptRung3 = []string{"bpf", "dac_override", "dac_read_search", "kill", "perfmon", "sys_ptrace"}
)

func withUprobes(caps []string) []string { return sortedCopy(append(slices.Clone(caps), "sys_admin")) }

// TestUnitCapabilities finds the agent unit's CapabilityBoundingSet minimal
// by test: the real binary runs under the set, in a sandbox like the unit's,
// and under the set with capabilities taken out; every capability of the
// set must be shown needed by some case, and the set must hold all that the
// cases need. A JVM of another user starts after the agent has attached and
// dropped what it does not need, so its uprobes attach with the capabilities
// the agent keeps, not those it started with.
//
// The JVM probe attaches uprobe_multi links where the kernel has them
// (Linux >= 6.6), which need no CAP_SYS_ADMIN. CAP_SYS_ADMIN is in the set
// for classic uprobes, which older kernels get and probes.jvm.attach: uprobe
// forces; the case that shows it needed forces them.
func TestUnitCapabilities(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "java", "jcmd", "setpriv", "unshare")
	bin := nerveBinary(t)
	unitCaps := readUnit(t, "systemd/nerve-agent.service").caps(t)
	// What the agent's auto mode takes here.
	multi, mode := true, "uprobe_multi"
	if err := features.HaveBPFLinkUprobeMulti(); err != nil {
		multi, mode = false, "uprobe"
		t.Logf("no uprobe_multi on this kernel, the JVM probe attaches classic uprobes: %v", err)
	}
	kept, keptR3 := keptJVM, keptRung3
	if !multi {
		kept, keptR3 = withUprobes(keptJVM), withUprobes(keptRung3)
	}
	var (
		mu     sync.Mutex
		proven = map[string]string{} // capability -> the case that needs it
	)
	prove := func(t *testing.T, caps ...string) {
		if t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range caps {
			proven[c] = t.Name()
		}
	}
	jvmOffCaps := without(unitCaps, "sys_admin", "sys_ptrace", "dac_read_search", "dac_override", "kill")

	cases := []struct {
		name   string
		caps   []string
		cfg    capsConfig
		proves []string
		check  func(t *testing.T, a *agentProc, cgDir string)
	}{{
		name: "unit set",
		caps: unitCaps,
		check: func(t *testing.T, a *agentProc, cgDir string) {
			for _, p := range []string{"blockio", "runqueue", "pagefault", "jvm"} {
				if _, ok := a.waitMetric(t, `^nerve_probe_attached\{probe="`+p+`"\} 1$`, 0); !ok {
					t.Errorf("probe %s not attached", p)
				}
			}
			checkSets(t, a, kept, kept)
			checkJVMProbed(t, a, cgDir, mode)
		},
	}, {
		name: "unit set, classic uprobes",
		caps: unitCaps,
		cfg:  capsConfig{uprobes: true},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			checkSets(t, a, withUprobes(keptJVM), withUprobes(keptJVM))
			checkJVMProbed(t, a, cgDir, "uprobe")
		},
	}, {
		name: "without CAP_SYS_ADMIN",
		caps: without(unitCaps, "sys_admin"),
		check: func(t *testing.T, a *agentProc, cgDir string) {
			if !multi {
				checkNoUSDT(t, a, cgDir)
				return
			}
			checkSets(t, a, keptJVM, keptJVM)
			checkJVMProbed(t, a, cgDir, mode)
		},
	}, {
		name:   "without CAP_SYS_ADMIN, classic uprobes",
		caps:   without(unitCaps, "sys_admin"),
		cfg:    capsConfig{uprobes: true},
		proves: []string{"sys_admin"},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			checkNoUSDT(t, a, cgDir)
		},
	}, {
		// Classic uprobes, so that the JVM has no USDT probes either.
		name:   "without CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH",
		caps:   without(unitCaps, "sys_admin", "dac_read_search"),
		cfg:    capsConfig{uprobes: true},
		proves: []string{"dac_read_search"},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			j := startJVM(t, cgDir)
			waitLog(t, a, fmt.Sprintf(`msg="JVM has neither USDT probes nor hsperfdata.*pid=%d `, j.pid))
			if m, ok := a.waitMetric(t, `^nerve_jvm_hsperf_safepoints_total\{target="nvjvm"\}.*`, 0); ok {
				t.Errorf("hsperfdata read without CAP_DAC_READ_SEARCH: %s", m[0])
			}
		},
	}, {
		name:   "without CAP_SYS_PTRACE",
		caps:   without(unitCaps, "sys_ptrace"),
		proves: []string{"sys_ptrace"},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			j := startJVM(t, cgDir)
			waitLog(t, a, fmt.Sprintf(`msg="stat libjvm.so".*pid=%d .*permission denied`, j.pid))
			if m, ok := a.waitMetric(t, `^nerve_jvm_watched\{.*target="nvjvm"\}.*`, 0); ok {
				t.Errorf("JVM watched without CAP_SYS_PTRACE: %s", m[0])
			}
		},
	}, {
		name: "JVM probe off",
		caps: jvmOffCaps,
		cfg:  capsConfig{jvmOff: true},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			for _, p := range []string{"blockio", "runqueue", "pagefault"} {
				if _, ok := a.waitMetric(t, `^nerve_probe_attached\{probe="`+p+`"\} 1$`, 0); !ok {
					t.Errorf("probe %s not attached", p)
				}
			}
			// Linux >= 6.5 needs no capability to read the maps.
			checkSets(t, a, nil, nil)
			// The maps are still read after the drop.
			before := a.value(t, `^nerve_runqueue_delay_seconds_count\{target="node"\} (\S+)$`)
			time.Sleep(time.Second)
			if after := a.value(t, `^nerve_runqueue_delay_seconds_count\{target="node"\} (\S+)$`); after <= before {
				t.Errorf("run-queue figures do not move after the drop: %v, then %v", before, after)
			}
		},
	}, {
		name:   "JVM probe off, without CAP_BPF",
		caps:   without(jvmOffCaps, "bpf"),
		cfg:    capsConfig{jvmOff: true},
		proves: []string{"bpf"},
	}, {
		name:   "JVM probe off, without CAP_PERFMON",
		caps:   without(jvmOffCaps, "perfmon"),
		cfg:    capsConfig{jvmOff: true},
		proves: []string{"perfmon"},
	}, {
		name: "rung 3 enforced, a data mount",
		caps: unitCaps,
		cfg:  capsConfig{rung3: true, dataMount: "DATA"},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			checkSets(t, a, keptR3, keptR3)
		},
	}, {
		name:   "without CAP_SETPCAP",
		caps:   without(unitCaps, "setpcap"),
		proves: []string{"setpcap"},
		check: func(t *testing.T, a *agentProc, cgDir string) {
			checkSets(t, a, kept, sortedCopy(without(unitCaps, "setpcap")))
			waitLog(t, a, `msg="bounding set not shrunk`)
		},
	}}
	t.Run("cases", func(t *testing.T) {
		for _, tt := range cases {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				cgRel, cgDir := privtest.Cgroup(t)
				cfg := tt.cfg
				cfg.state, cfg.cgRel = t.TempDir(), cgRel
				rw := []string{cfg.state}
				if cfg.dataMount != "" {
					cfg.dataMount = t.TempDir()
					rw = append(rw, cfg.dataMount)
				}
				a, out := startAgent(t, []string{bin, "agent", "--config.file=" + cfg.write(t)}, tt.caps, sandbox{rw: rw})
				if tt.check == nil { // the agent must refuse to start
					if a != nil {
						t.Fatalf("agent started without %v", tt.proves)
					}
					for _, c := range tt.proves {
						if !strings.Contains(out, "CAP_"+strings.ToUpper(c)) {
							t.Errorf("agent output does not name CAP_%s:\n%s", strings.ToUpper(c), out)
						}
					}
					prove(t, tt.proves...)
					return
				}
				if a == nil {
					t.Fatalf("agent exited at start:\n%s", out)
				}
				tt.check(t, a, cgDir)
				if err := a.stop(t); err != nil {
					t.Errorf("agent stop: %v", err)
				}
				prove(t, tt.proves...)
			})
		}
		t.Run("jcmd for rung 3", func(t *testing.T) {
			t.Parallel()
			testJcmdCapabilities(t, keptR3)
			prove(t, "kill", "dac_override")
		})
	})
	if t.Failed() {
		return
	}
	var got []string
	for c := range proven {
		got = append(got, c)
	}
	if got, want := sortedCopy(got), sortedCopy(unitCaps); !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities shown needed %v, unit's CapabilityBoundingSet %v: each capability of the unit needs a case that fails without it, and the reverse", got, want)
	}
	t.Logf("needed, and why: %v", proven)
}

// checkJVMProbed checks that the JVM probe attaches in mode, and that a JVM
// started now, after the drop, is watched with its USDT probes and its
// safepoints are counted.
func checkJVMProbed(t *testing.T, a *agentProc, cgDir, mode string) {
	t.Helper()
	if _, ok := a.waitMetric(t, `^nerve_jvm_probe_info\{attach="`+mode+`"\} 1$`, 0); !ok {
		t.Errorf("JVM probe not attaching with %s", mode)
	}
	j := startJVM(t, cgDir)
	if _, ok := a.waitMetric(t, `^nerve_jvm_watched\{probes="true",target="nvjvm"\} 1$`, 15*time.Second); !ok {
		t.Fatalf("JVM %d not watched with USDT probes (%s)", j.pid, mode)
	}
	waitLog(t, a, `msg="attached to libjvm.so".* attach=`+mode+` `)
	if _, ok := a.waitMetric(t, `^nerve_jvm_safepoint_seconds_count\{target="nvjvm"\} [1-9]`, 15*time.Second); !ok {
		t.Errorf("no safepoints of JVM %d counted", j.pid)
	}
}

// checkNoUSDT checks that a JVM started now is watched without USDT probes,
// as classic uprobes need CAP_SYS_ADMIN, and is read from its hsperfdata.
func checkNoUSDT(t *testing.T, a *agentProc, cgDir string) {
	t.Helper()
	j := startJVM(t, cgDir)
	if _, ok := a.waitMetric(t, `^nerve_jvm_watched\{probes="false",target="nvjvm"\} 1$`, 15*time.Second); !ok {
		t.Fatalf("JVM %d watched with USDT probes, or not at all, without CAP_SYS_ADMIN", j.pid)
	}
	waitLog(t, a, `msg="libjvm.so has no usable USDT probes.*perf_uprobe.*permission denied`)
	// What is left: hsperfdata, which CAP_DAC_READ_SEARCH reads.
	if _, ok := a.waitMetric(t, `^nerve_jvm_hsperf_safepoints_total\{target="nvjvm"\} [1-9]`, 15*time.Second); !ok {
		t.Errorf("JVM %d not read from hsperfdata", j.pid)
	}
}

// checkSets compares the agent's effective and bounding sets, once it
// serves (so after the drop), with want.
func checkSets(t *testing.T, a *agentProc, eff, bnd []string) {
	t.Helper()
	if got := a.status(t, "CapEff"); !reflect.DeepEqual(got, sortedCopy(eff)) && !(len(got) == 0 && len(eff) == 0) {
		t.Errorf("CapEff after attach = %v, want %v", got, eff)
	}
	if got := a.status(t, "CapBnd"); !reflect.DeepEqual(got, sortedCopy(bnd)) && !(len(got) == 0 && len(bnd) == 0) {
		t.Errorf("CapBnd after attach = %v, want %v", got, bnd)
	}
	// The metric says the same.
	var metric []string
	for _, m := range regexp.MustCompile(`(?m)^nerve_agent_capabilities\{cap="CAP_(\w+)",set="effective"\} 1$`).FindAllStringSubmatch(a.metrics(t), -1) {
		metric = append(metric, strings.ToLower(m[1]))
	}
	if got := sortedCopy(metric); !reflect.DeepEqual(got, sortedCopy(eff)) && !(len(got) == 0 && len(eff) == 0) {
		t.Errorf("nerve_agent_capabilities{set=\"effective\"} = %v, want %v", got, eff)
	}
}

// waitLog waits until the agent's output matches re.
func waitLog(t *testing.T, a *agentProc, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(15 * time.Second)
	for !rx.MatchString(a.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log /%s/ within 15s", re)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testJcmdCapabilities runs what rung 3 runs, jcmd Thread.print, against a
// JVM of another user, with the capabilities the agent keeps for rung 3, in
// the unit's read-only sandbox: without CAP_KILL it cannot start the JVM's
// attach listener (SIGQUIT), without CAP_DAC_OVERRIDE it cannot connect to
// the listener's socket, with both it dumps. The order matters: once the
// listener runs, a later jcmd needs no signal.
func testJcmdCapabilities(t *testing.T, keptRung3 []string) {
	_, cgDir := privtest.Cgroup(t)
	j := startJVM(t, cgDir)
	for _, tt := range []struct {
		caps []string
		ok   bool
	}{
		{without(keptRung3, "kill"), false},
		{without(keptRung3, "dac_override"), false},
		{keptRung3, true},
	} {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", sandboxScript,
			"sh", "jcmd", fmt.Sprint(j.pid), "Thread.print")
		cmd.Env = append(os.Environ(), "CAPS="+strings.Join(tt.caps, ","), "RW=", "BINDS=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, _ := cmd.CombinedOutput()
		if got := strings.Contains(string(out), "Full thread dump"); got != tt.ok {
			t.Errorf("jcmd Thread.print with %v: dumped %v, want %v:\n%s", tt.caps, got, tt.ok, tail(string(out), 1000))
		}
	}
}
