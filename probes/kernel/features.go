package kernel

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Feature is whether the kernel offers one thing, and if not, why not.
type Feature struct {
	// Name is the short name used in logs and tables, like "tp_btf".
	Name string
	// Err explains why the feature is missing; nil when it is present.
	Err error
}

// OK reports whether the feature is present.
func (f Feature) OK() bool { return f.Err == nil }

// Features is what the running kernel offers the agent.
type Features struct {
	// Release is the kernel release, as uname -r prints it.
	Release string

	// BTF: the kernel describes its own types (/sys/kernel/btf/vmlinux),
	// which CO-RE programs need to load at all.
	BTF Feature
	// TPBTF: tp_btf programs load and attach; they read tracepoint arguments
	// directly, checked by the verifier against BTF.
	TPBTF Feature
	// RawTP: raw_tp programs load and attach, the fallback for tp_btf.
	RawTP Feature
	// Tracepoint: classic tracepoint programs load and attach via tracefs.
	Tracepoint Feature
	// RingBuf: BPF ring buffer maps can be created.
	RingBuf Feature
	// TaskStorage: task-local storage maps can be created.
	TaskStorage Feature
	// Kprobes: kprobe programs attach to kernel functions.
	Kprobes Feature
	// Fentry: fentry programs attach to kernel functions.
	Fentry Feature
	// UprobeMulti: uprobe_multi links (Linux 6.6), which the JVM probe
	// prefers to classic uprobes: they need no CAP_SYS_ADMIN.
	UprobeMulti Feature
	// BPFStats: the kernel's BPF run-time statistics can be switched on.
	BPFStats Feature
}

// All lists the features in the order the start-up table shows them.
func (f *Features) All() []Feature {
	return []Feature{f.BTF, f.TPBTF, f.RawTP, f.Tracepoint, f.RingBuf, f.TaskStorage, f.Kprobes, f.Fentry, f.UprobeMulti, f.BPFStats}
}

var (
	detectOnce sync.Once
	detected   *Features
)

// Detect probes the kernel on first call and returns the same answer after.
// The kernel does not change under a running agent, and some tests load and
// attach programs, which is not free. Call it after EnsureMounts.
func Detect() *Features {
	detectOnce.Do(func() { detected = detect() })
	return detected
}

// Hooks the attach tests use. sched_process_exit and vfs_read exist in every
// kernel the agent supports, and an attach there that runs a program which
// does nothing for the microseconds the test holds it costs nothing.
const (
	testTracepointGroup = "sched"
	testTracepoint      = "sched_process_exit"
	testFunction        = "vfs_read"
)

func detect() *Features {
	f := &Features{Release: release()}
	f.BTF = feature("btf", haveBTF())
	f.TPBTF = feature("tp_btf", haveTPBTF())
	f.RawTP = feature("raw_tp", haveRawTP())
	f.Tracepoint = feature("tracepoint", haveTracepoint())
	f.RingBuf = feature("ringbuf", features.HaveMapType(ebpf.RingBuf))
	f.TaskStorage = feature("task_storage", features.HaveMapType(ebpf.TaskStorage))
	f.Kprobes = feature("kprobe", haveKprobes())
	f.Fentry = feature("fentry", haveFentry(f.TPBTF.OK()))
	f.UprobeMulti = feature("uprobe_multi", features.HaveBPFLinkUprobeMulti())
	f.BPFStats = feature("bpf_stats", haveBPFStats())
	return f
}

func feature(name string, err error) Feature { return Feature{Name: name, Err: err} }

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func haveBTF() error {
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("load vmlinux BTF: %w", err)
	}
	return nil
}

// testProgram loads a program that returns 0 and does nothing else.
func testProgram(spec *ebpf.ProgramSpec) (*ebpf.Program, error) {
	spec.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	spec.License = "GPL"
	return ebpf.NewProgram(spec)
}

// attachTest loads spec, attaches it with attach and detaches it again.
func attachTest(spec *ebpf.ProgramSpec, attach func(*ebpf.Program) (link.Link, error)) error {
	prog, err := testProgram(spec)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer prog.Close()
	l, err := attach(prog)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return l.Close()
}

// haveTPBTF attaches a real tp_btf program. features.HaveProgramType(Tracing)
// is not enough: it tests with an fentry program, so on kernels that refuse
// fentry but run tp_btf (this project's 6.18 test VM) it says no to both.
func haveTPBTF() error {
	spec := &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: testTracepoint}
	err := attachTest(spec, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	if err != nil {
		return fmt.Errorf("tp_btf/%s: %w", testTracepoint, err)
	}
	return nil
}

func haveRawTP() error {
	err := attachTest(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint}, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: testTracepoint, Program: p})
	})
	if err != nil {
		return fmt.Errorf("raw_tp/%s: %w", testTracepoint, err)
	}
	return nil
}

func haveTracepoint() error {
	err := attachTest(&ebpf.ProgramSpec{Type: ebpf.TracePoint}, func(p *ebpf.Program) (link.Link, error) {
		return link.Tracepoint(testTracepointGroup, testTracepoint, p, nil)
	})
	if err != nil {
		return fmt.Errorf("tracepoint/%s/%s: %w", testTracepointGroup, testTracepoint, err)
	}
	return nil
}

func haveKprobes() error {
	err := attachTest(&ebpf.ProgramSpec{Type: ebpf.Kprobe}, func(p *ebpf.Program) (link.Link, error) {
		return link.Kprobe(testFunction, p, nil)
	})
	if err == nil {
		return nil
	}
	// Without CONFIG_KPROBE_EVENTS neither the kprobe PMU nor tracefs's
	// kprobe_events exists, and the raw error only names the file.
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kprobe/%s: kernel has no kprobe events (built without CONFIG_KPROBES or CONFIG_KPROBE_EVENTS?): %w", testFunction, err)
	}
	return fmt.Errorf("kprobe/%s: %w", testFunction, err)
}

// haveFentry attaches a real fentry program. tpbtfOK sharpens the message
// for EPERM: cilium/ebpf then suggests raising RLIMIT_MEMLOCK, but when a
// tp_btf program of the same type has just loaded, neither privileges nor
// memlock are the reason; the kernel refuses fentry itself.
func haveFentry(tpbtfOK bool) error {
	spec := &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: testFunction}
	err := attachTest(spec, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	switch {
	case err == nil:
		return nil
	case tpbtfOK && errors.Is(err, unix.EPERM):
		// Without the library's memlock hint, which is beside the point
		// here and would contradict the sentence.
		return fmt.Errorf("fentry/%s: kernel refuses fentry programs although tp_btf loads (not a privilege or memlock problem): %s",
			testFunction, strings.TrimSuffix(err.Error(), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"))
	}
	return fmt.Errorf("fentry/%s: %w", testFunction, err)
}

func haveBPFStats() error {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return fmt.Errorf("enable BPF_STATS_RUN_TIME: %w", err)
	}
	return c.Close()
}

// Table renders the features as an aligned text table, with the reason for
// each missing one, for people (a status command, a test log).
func (f *Features) Table() string {
	var b strings.Builder
	f.writeTable(&b)
	return b.String()
}

func (f *Features) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "kernel\t%s\n", f.Release)
	for _, ft := range f.All() {
		if ft.OK() {
			fmt.Fprintf(tw, "%s\tyes\n", ft.Name)
		} else {
			fmt.Fprintf(tw, "%s\tno: %v\n", ft.Name, ft.Err)
		}
	}
	tw.Flush()
}

// Log writes the features as one record, so that the whole table lands on
// one line of the journal: each feature is "yes" or "no: <why>".
func (f *Features) Log(logger *slog.Logger) {
	attrs := []any{"release", f.Release}
	for _, ft := range f.All() {
		v := "yes"
		if !ft.OK() {
			v = "no: " + ft.Err.Error()
		}
		attrs = append(attrs, ft.Name, v)
	}
	logger.Info("kernel features", attrs...)
}

// CheckBTF says what is wrong, and what to do, when the kernel does not
// describe its own types: every nerve probe is CO-RE and cannot load without
// it.
func CheckBTF() error {
	if err := haveBTF(); err != nil {
		return fmt.Errorf("kernel %s has no usable BTF, which nerve's probes need (a kernel built with CONFIG_DEBUG_INFO_BTF=y provides /sys/kernel/btf/vmlinux): %w", release(), err)
	}
	return nil
}
