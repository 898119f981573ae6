package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/diagnose"
	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/jvm/javatest"
)

// The faults' settings.
const (
	// slowDelay is above the default slow_drive enter (50 ms), in the range
	// of a failing drive.
	slowDelay = 60 * time.Millisecond
	// overloadDelay is a healthy drive's latency; overloadReaders
	// synchronous readers on a queue of overloadNrRequests keep each
	// request waiting for tens of other requests.
	overloadDelay      = time.Millisecond
	overloadReaders    = 128
	overloadNrRequests = 4
	// stallDelay is what each page fault of the toucher waits for, above
	// the default memory_stall enter (20 ms).
	stallDelay = 40 * time.Millisecond
)

// slowDisk: a drive whose own latency jumps to slowDelay under a light load
// of one synchronous reader (in-flight 0): slow_drive, never disk_overload.
func slowDisk(ctx context.Context, e *env, f *fault) error {
	d, err := faults.NewSlowDisk(e.sc.disks(), 64<<20, 0)
	if err != nil {
		return err
	}
	f.cleanup = append(f.cleanup, func() { d.Close() })
	if _, err := e.sc.startHelper(e.cgDir, "read", d.Device(), "1"); err != nil {
		return err
	}
	name := d.Name()
	f.desc = fmt.Sprintf("%s: %v per I/O, 1 direct reader", name, slowDelay)
	f.subject = func() string { return name }
	f.forbid = []actuator.Kind{actuator.DiskOverload}
	f.start = func() error { d.SetDelay(slowDelay); return nil }
	return nil
}

// diskOverload: a healthy drive (overloadDelay per request, whatever the
// load) behind a short queue, driven by many synchronous readers:
// disk_overload, never slow_drive.
func diskOverload(ctx context.Context, e *env, f *fault) error {
	return overloadedDisk(e, f, overloadDelay, actuator.SlowDrive)
}

// overloadedDisk makes a drive of the given latency behind a short queue
// (mq-deadline, overloadNrRequests), driven at the onset by overloadReaders
// synchronous readers; forbid is the diagnosis that would be the wrong one.
func overloadedDisk(e *env, f *fault, delay time.Duration, forbid actuator.Kind) error {
	d, err := faults.NewSlowDisk(e.sc.disks(), 256<<20, overloadDelay)
	if err != nil {
		return err
	}
	f.cleanup = append(f.cleanup, func() { d.Close() })
	if err := d.SetScheduler("mq-deadline"); err != nil {
		return err
	}
	if err := d.SetNrRequests(overloadNrRequests); err != nil {
		return err
	}
	// A read before the onset, so the probes know the device from the
	// first window on.
	if err := readOnce(d.Device()); err != nil {
		return err
	}
	name := d.Name()
	f.desc = fmt.Sprintf("%s: %v per I/O, %d direct readers, nr_requests %d", name, delay, overloadReaders, overloadNrRequests)
	f.subject = func() string { return name }
	f.forbid = []actuator.Kind{forbid}
	f.start = func() error {
		d.SetDelay(delay)
		_, err := e.sc.startHelper(e.cgDir, "read", d.Device(), strconv.Itoa(overloadReaders))
		return err
	}
	return nil
}

// cpuOverload: five CPU hogs per CPU in the drill's cgroup, the target.
func cpuOverload(ctx context.Context, e *env, f *fault) error {
	n := 5 * runtime.NumCPU()
	f.desc = fmt.Sprintf("%d CPU hogs on %d CPUs in cgroup %s", n, runtime.NumCPU(), e.cgRel)
	f.subject = func() string { return diagnose.Node }
	f.start = func() error {
		for range n {
			if _, err := e.sc.startHelper(e.cgDir, "cpu"); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// memoryStall: a process in the target cgroup maps a slow disk and touches
// its pages at random, so its page faults wait for the disk.
func memoryStall(ctx context.Context, e *env, f *fault) error {
	d, err := faults.NewSlowDisk(e.sc.disks(), 64<<20, stallDelay)
	if err != nil {
		return err
	}
	f.cleanup = append(f.cleanup, func() { d.Close() })
	dev := d.Device()
	f.desc = fmt.Sprintf("random page touches of %s mapped (%v per I/O) in cgroup %s", d.Name(), stallDelay, e.cgRel)
	f.subject = func() string { return diagnose.Node }
	f.start = func() error {
		_, err := e.sc.startHelper(e.cgDir, "touch", dev)
		return err
	}
	return nil
}

// queryOfDeath: a JVM in a GC spiral (jvm/javatest's HeapThrash, -Xmx64m)
// in the target cgroup, watched with DrillThrash.
func queryOfDeath(ctx context.Context, e *env, f *fault) error {
	java, err := exec.LookPath("java")
	if err != nil {
		return errors.New("java not found on PATH: this drill runs a thrashing JVM; install a JDK (11 or later) or run the other drills")
	}
	if err := e.startJVM(); err != nil {
		return err
	}
	path, err := e.javaSource("HeapThrash.java")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	pid := 0
	f.desc = fmt.Sprintf("HeapThrash in a JVM (-Xmx64m) in cgroup %s, thrash bucket %v", e.cgRel, DrillThrash.Threshold)
	f.subject = func() string {
		mu.Lock()
		defer mu.Unlock()
		return "pid " + strconv.Itoa(pid)
	}
	f.match = func(s string) bool {
		want := f.subject()
		return s == want || strings.HasPrefix(s, want+" ")
	}
	f.start = func() error {
		// Source-file mode (java 11+): no javac needed.
		cmd := exec.Command(java, "-Xmx64m", path, "0")
		if err := e.sc.start(cmd, e.cgDir); err != nil {
			return err
		}
		mu.Lock()
		pid = cmd.Process.Pid
		mu.Unlock()
		return nil
	}
	return nil
}

// javaSource writes jvm/javatest's program name into the scratch directory
// and returns its path, to be run in source-file mode (java 11+: no javac).
func (e *env) javaSource(name string) (string, error) {
	src, err := javatest.Source(name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(e.sc.dir, "java")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// healthyBusy, a control: the machine works on every front nerve watches,
// within its goals. A healthy drive (overloadDelay) under four direct
// readers, page faults served by it, a healthy busy JVM when java is
// installed, and CPU hogs to bring the load to about one less than the
// CPUs: busy, nothing wrong, so no diagnosis may enter.
func healthyBusy(ctx context.Context, e *env, f *fault) error {
	d, err := faults.NewSlowDisk(e.sc.disks(), 256<<20, overloadDelay)
	if err != nil {
		return err
	}
	f.cleanup = append(f.cleanup, func() { d.Close() })
	if err := readOnce(d.Device()); err != nil {
		return err
	}
	java, _ := exec.LookPath("java")
	var busy string
	if java != "" {
		if err := e.startJVM(); err != nil {
			return err
		}
		if busy, err = e.javaSource("Busy.java"); err != nil {
			return err
		}
	}
	hogs := runtime.NumCPU() - 1
	if java != "" {
		hogs-- // the JVM's worker
	}
	hogs = max(hogs, 0)
	f.desc = fmt.Sprintf("healthy %s (%v per I/O) under 4 direct readers and page faults, %d CPU hogs on %d CPUs", d.Name(), overloadDelay, hogs, runtime.NumCPU())
	if java != "" {
		f.desc += ", a busy JVM (1 worker)"
	}
	f.desc += " in cgroup " + e.cgRel
	f.subject = func() string { return "the whole node" }
	f.start = func() error {
		if _, err := e.sc.startHelper(e.cgDir, "read", d.Device(), "4"); err != nil {
			return err
		}
		if _, err := e.sc.startHelper(e.cgDir, "touch", d.Device()); err != nil {
			return err
		}
		for range hogs {
			if _, err := e.sc.startHelper(e.cgDir, "cpu"); err != nil {
				return err
			}
		}
		if java != "" {
			return e.sc.start(exec.Command(java, "-Xmx256m", busy, "3600", "1"), e.cgDir)
		}
		return nil
	}
	return nil
}

// overloadedSlowDisk, mixed: a drive as slow as slow-disk's, driven as hard
// as disk-overload's. It is never idle, and its queue is long; the queue is
// the slow drive's doing, so nerve must say slow_drive (replace it), never
// disk_overload (shed load, which would not help).
func overloadedSlowDisk(ctx context.Context, e *env, f *fault) error {
	return overloadedDisk(e, f, slowDelay, actuator.DiskOverload)
}

// slowDiskCPUOverload, mixed: a slow drive under light load while the CPUs
// are overloaded. Both must be seen, each on its own subject: slow_drive
// on the drive (not disk_overload: its readers wait for a CPU, not for the
// drive), cpu_overload on the node.
func slowDiskCPUOverload(ctx context.Context, e *env, f *fault) error {
	d, err := faults.NewSlowDisk(e.sc.disks(), 64<<20, 0)
	if err != nil {
		return err
	}
	f.cleanup = append(f.cleanup, func() { d.Close() })
	if err := readOnce(d.Device()); err != nil {
		return err
	}
	name := d.Name()
	n := 5 * runtime.NumCPU()
	f.desc = fmt.Sprintf("%s: %v per I/O, 2 direct readers; %d CPU hogs on %d CPUs in cgroup %s", name, slowDelay, n, runtime.NumCPU(), e.cgRel)
	f.subject = func() string { return name }
	f.forbid = []actuator.Kind{actuator.DiskOverload}
	f.also = []want{{kind: actuator.CPUOverload, subject: func() string { return diagnose.Node }}}
	f.start = func() error {
		d.SetDelay(slowDelay)
		if _, err := e.sc.startHelper(e.cgDir, "read", d.Device(), "2"); err != nil {
			return err
		}
		for range n {
			if _, err := e.sc.startHelper(e.cgDir, "cpu"); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// readOnce reads one 4 KiB block of dev with direct I/O.
func readOnce(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	if _, err := unix.Pread(fd, buf, 0); err != nil {
		return fmt.Errorf("read %s: %w", dev, err)
	}
	return nil
}
