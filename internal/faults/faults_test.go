package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/privtest"
)

// crashHelperEnv, when set to a directory, makes the test binary a helper
// that makes a slow disk there, prints its device and waits to be killed.
const crashHelperEnv = "NERVE_FAULTS_CRASH_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashHelperEnv); dir != "" {
		crashHelper(dir)
	}
	os.Exit(m.Run())
}

func crashHelper(dir string) {
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(d.Device())
	select {} // until killed
}

// scratch checks the test can run and returns a scratch directory that is
// checked, after every disk's own Close, for anything left behind.
func scratch(t *testing.T) string {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "losetup", "fio")
	dir := filepath.Join(t.TempDir(), "faults")
	t.Cleanup(func() {
		removed, err := CleanupLeftovers(dir)
		if err != nil {
			t.Errorf("CleanupLeftovers(%s): %v", dir, err)
		}
		for _, r := range removed {
			if r != dir {
				t.Errorf("left behind after Close: %s", r)
			}
		}
	})
	return dir
}

type fioStats struct {
	TotalIOs int64 `json:"total_ios"`
	ClatNs   struct {
		Mean float64 `json:"mean"`
	} `json:"clat_ns"`
}

type fioReport struct {
	Jobs []struct {
		Error int      `json:"error"`
		Read  fioStats `json:"read"`
		Write fioStats `json:"write"`
	} `json:"jobs"`
}

// fio runs fio with JSON output and returns its only job's report.
func fio(t *testing.T, args ...string) fioReport {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("fio", append(args, "--output-format=json")...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fio %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	// fio may print notes before the JSON document.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var r fioReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("parse fio output: %v\n%s", err, out)
	}
	if len(r.Jobs) != 1 || r.Jobs[0].Error != 0 {
		t.Fatalf("fio %s: want one job without error, got %+v", strings.Join(args, " "), r.Jobs)
	}
	return r
}

// diskReads returns the completed reads and the milliseconds spent on them
// from /sys/block/<name>/stat: the block layer's own service time.
func diskReads(t *testing.T, name string) (ios, ms int64) {
	t.Helper()
	s, err := readSysfs(filepath.Join(sysBlock, name, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(s)
	if len(f) < 4 {
		t.Fatalf("short %s/stat: %q", name, s)
	}
	ios, err = strconv.ParseInt(f[0], 10, 64)
	if err == nil {
		ms, err = strconv.ParseInt(f[3], 10, 64)
	}
	if err != nil {
		t.Fatalf("parse %s/stat %q: %v", name, s, err)
	}
	return ios, ms
}

// latencyAttempts is how many times a latency measurement is taken before
// a figure above the bound fails the test. Other work on the machine can
// only add latency, never remove it, so a figure below the bound fails at
// once, while one above it is measured again after a pause.
const latencyAttempts = 5

// latencyBounds returns the range a measured per-request latency must fall
// in for an injected delay: at least the delay (less 2% for clock
// differences; a sleep never ends early), and at most 15% or 1 ms above it,
// whichever is more. The overhead of a request (a FUSE round trip, a loop
// worker and four wakeups) is a fixed cost, not a share of the delay: on a
// busy 2-CPU machine it reaches about a millisecond, which 15% of 5 ms
// would not cover.
func latencyBounds(delay time.Duration) (lo, hi time.Duration) {
	return delay * 98 / 100, delay + max(delay*15/100, time.Millisecond)
}

// retryPause lets a burst of other work on the machine pass before a
// latency measurement is taken again.
func retryPause(t *testing.T, attempt int) {
	t.Helper()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("attempt %d above the bound; load average %s; measuring again", attempt, strings.TrimSpace(string(load)))
	time.Sleep(time.Second)
}

func TestSlowDiskLatency(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 64<<20, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	if !d.DirectIO() {
		t.Fatalf("%s: direct i/o off", d.Name())
	}

	const n = 40
	// measure reads n blocks one at a time and returns fio's mean completion
	// latency and the block layer's own mean read time, the figure the block
	// I/O probe sees.
	measure := func(t *testing.T) (clat, svc time.Duration) {
		t.Helper()
		ios0, ms0 := diskReads(t, d.Name())
		r := fio(t, "--name=t", "--filename="+d.Device(), "--direct=1", "--rw=randread", "--bs=4k",
			"--iodepth=1", "--ioengine=psync", "--number_ios="+strconv.Itoa(n))
		ios1, ms1 := diskReads(t, d.Name())
		if got := r.Jobs[0].Read.TotalIOs; got != n {
			t.Errorf("fio read total_ios = %d, want %d", got, n)
		}
		if ios1-ios0 < n {
			t.Fatalf("%s: %d reads completed, want at least %d", d.Name(), ios1-ios0, n)
		}
		clat = time.Duration(r.Jobs[0].Read.ClatNs.Mean)
		svc = time.Duration(ms1-ms0) * time.Millisecond / time.Duration(ios1-ios0)
		return clat, svc
	}

	for _, delay := range []time.Duration{20 * time.Millisecond, 5 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			d.SetDelay(delay)
			lo, hi := latencyBounds(delay)
			for attempt := 1; ; attempt++ {
				clat, svc := measure(t)
				t.Logf("delay %v, attempt %d: fio clat mean %v, block layer mean read time %v", delay, attempt, clat, svc)
				if clat < lo || svc < lo {
					t.Fatalf("fio clat mean %v, block layer mean read time %v: want at least %v for a delay of %v", clat, svc, lo, delay)
				}
				if clat <= hi && svc <= hi {
					break
				}
				if attempt == latencyAttempts {
					t.Fatalf("fio clat mean %v, block layer mean read time %v: want at most %v for a delay of %v, in %d attempts",
						clat, svc, hi, delay, latencyAttempts)
				}
				retryPause(t, attempt)
			}
		})
	}
}

// TestSlowDiskConcurrent checks that requests in flight together sleep
// together: were the server to serve them one by one, each would wait for
// the delays of all those ahead of it.
func TestSlowDiskConcurrent(t *testing.T) {
	dir := scratch(t)
	const delay = 10 * time.Millisecond
	d, err := NewSlowDisk(dir, 64<<20, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	// Served one by one, requests kept 32 deep would each wait about 32
	// delays; served together, each takes about one delay. On a loaded
	// 2-CPU machine the FUSE server's threads come slowly and about four
	// requests are served at once, so the bound asks for at least three in
	// parallel: it fails a serialised disk, never a busy machine.
	lo, hi := delay*98/100, delay*32/3
	for _, rw := range []string{"randread", "randwrite"} {
		t.Run(rw, func(t *testing.T) {
			for attempt := 1; ; attempt++ {
				r := fio(t, "--name=t", "--filename="+d.Device(), "--direct=1", "--rw="+rw, "--bs=4k",
					"--iodepth=32", "--ioengine=libaio", "--number_ios=640")
				st := r.Jobs[0].Read
				if rw == "randwrite" {
					st = r.Jobs[0].Write
				}
				clat := time.Duration(st.ClatNs.Mean)
				t.Logf("iodepth 32, attempt %d: fio clat mean %v over %d requests", attempt, clat, st.TotalIOs)
				if clat < lo {
					t.Fatalf("fio clat mean %v: want at least %v for a delay of %v", clat, lo, delay)
				}
				if clat <= hi {
					break
				}
				if attempt == latencyAttempts {
					t.Fatalf("fio clat mean %v at iodepth 32: want at most %v for a delay of %v, in %d attempts", clat, hi, delay, latencyAttempts)
				}
				sched, _ := d.Scheduler()
				nr, _ := d.NrRequests()
				t.Logf("%s: scheduler %s, nr_requests %d", d.Name(), sched, nr)
				retryPause(t, attempt)
			}
		})
	}
}

// alignedBuf returns page-aligned memory, as O_DIRECT wants.
func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestSlowDiskData(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})

	tests := []struct {
		name string
		off  int64
		len  int
	}{
		{"one block", 0, 4096},
		{"unaligned to fuse requests", 3<<20 + 4096, 1<<20 + 8192},
		{"last block", 16<<20 - 4096, 4096},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := alignedBuf(t, tt.len)
			for j := range want {
				want[j] = byte(i + j*7 + j>>12)
			}
			f, err := os.OpenFile(d.Device(), os.O_RDWR|unix.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(want, tt.off); err != nil {
				t.Fatalf("write %s at %d: %v", d.Device(), tt.off, err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			got := alignedBuf(t, tt.len)
			if _, err := f.ReadAt(got, tt.off); err != nil {
				t.Fatalf("read %s at %d: %v", d.Device(), tt.off, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read back from %s differs from what was written at %d", d.Device(), tt.off)
			}
			// The data went through the FUSE file into the store.
			stored := make([]byte, tt.len)
			if _, err := d.store.ReadAt(stored, tt.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stored, want) {
				t.Errorf("store differs from what was written at %d", tt.off)
			}
		})
	}

	t.Run("never written reads zero", func(t *testing.T) {
		f, err := os.OpenFile(d.Device(), os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := alignedBuf(t, 64<<10)
		if _, err := f.ReadAt(got, 8<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, make([]byte, len(got))) {
			t.Error("never written blocks do not read zero")
		}
	})
}

// A child started after the mount must not inherit the FUSE connection: a
// child stuck on the disk would otherwise keep it open after we die.
func TestSlowDiskFUSECloseOnExec(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "/dev/fuse" {
			continue
		}
		seen++
		fd, _ := strconv.Atoi(e.Name())
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		if flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("/dev/fuse on fd %d is not close-on-exec", fd)
		}
	}
	if seen == 0 {
		t.Error("no /dev/fuse descriptor open while the disk is mounted")
	}
}

func TestSlowDiskClose(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	maj, min := d.DevNum()
	var st unix.Stat_t
	if err := unix.Stat(d.Device(), &st); err != nil {
		t.Fatal(err)
	}
	if gotMaj, gotMin := unix.Major(st.Rdev), unix.Minor(st.Rdev); gotMaj != maj || gotMin != min {
		t.Errorf("DevNum() = %d:%d, want %d:%d from %s", maj, min, gotMaj, gotMin, d.Device())
	}
	if want := "loop"; !strings.HasPrefix(d.Name(), want) || d.Device() != "/dev/"+d.Name() {
		t.Errorf("Name() = %q, Device() = %q", d.Name(), d.Device())
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checkGone(t, d, dir)
	if _, err := os.Stat(d.root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after Close: %v", d.root, err)
	}
}

// TestSlowDiskCloseBusy closes a disk while the device is still open: the
// kernel can only detach it on that last close, so Close must say so, and
// everything must still go away once the device is closed.
func TestSlowDiskCloseBusy(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(d.Device(), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		d.Close()
	})
	defer func(old time.Duration) { detachTimeout = old }(detachTimeout)
	detachTimeout = 200 * time.Millisecond

	if err := d.Close(); err == nil {
		t.Error("Close with the device open elsewhere: no error")
	} else {
		t.Logf("Close with the device open elsewhere: %v", err)
	}
	// The device still works for its last user.
	buf := alignedBuf(t, 4096)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Errorf("read after Close from a descriptor opened before: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, d, filepath.Dir(d.root))
	if _, err := os.Stat(d.root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after Close: %v", d.root, err)
	}
}

// checkGone checks that a slow disk's loop device, mount and server are gone.
func checkGone(t *testing.T, d *SlowDisk, dir string) {
	t.Helper()
	if b, err := backingFile(d.Name()); err == nil && b == d.Backing() {
		t.Errorf("%s still bound to %s", d.Device(), b)
	}
	if ms, err := mountsUnder(dir); err != nil || len(ms) > 0 {
		t.Errorf("mounts under %s: %v, %v; want none", dir, ms, err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Error("fuse server still running")
	}
}

func TestAttachLoop(t *testing.T) {
	dir := scratch(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, directIO := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct i/o %v", directIO), func(t *testing.T) {
			f, err := os.CreateTemp(dir, "plain-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.Remove(f.Name())
			if err := f.Truncate(8 << 20); err != nil {
				t.Fatal(err)
			}
			f.Close()

			l, err := AttachLoop(f.Name(), directIO)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := l.Close(); err != nil {
					t.Error(err)
				}
			})
			if got := l.DirectIO(); got != directIO {
				t.Errorf("%s: DirectIO() = %v, want %v", l.Name(), got, directIO)
			}
			if want, _ := canonical(f.Name()); l.Backing() != want {
				t.Errorf("Backing() = %q, want %q", l.Backing(), want)
			}
			checkDefaultQueue(t, l)
			r := fio(t, "--name=v", "--filename="+l.Device(), "--direct=1", "--rw=randwrite", "--bs=4k",
				"--size=4m", "--iodepth=8", "--ioengine=libaio", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0")
			if got := r.Jobs[0].Write.TotalIOs; got != 1024 {
				t.Errorf("fio wrote %d blocks, want 1024", got)
			}

			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if b, err := backingFile(l.Name()); err == nil && b == l.Backing() {
				t.Errorf("%s still bound to %s after Close", l.Device(), b)
			}
			if _, err := os.Stat(f.Name()); err != nil {
				t.Errorf("Close removed the caller's backing file: %v", err)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(dir, "missing")
		if l, err := AttachLoop(missing, false); err == nil {
			l.Close()
			t.Fatalf("AttachLoop(%s): no error", missing)
		}
		devs, err := loopDevices()
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range devs {
			if b == missing {
				t.Errorf("%s left bound to %s", name, b)
			}
		}
	})
}

// checkDefaultQueue checks that a loop device has the loop driver's
// default scheduler and queue depth.
func checkDefaultQueue(t *testing.T, l *Loop) {
	t.Helper()
	want := defaultLoopDepth
	if s, err := readSysfs("/sys/module/loop/parameters/hw_queue_depth"); err == nil {
		if want, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	sched, err := l.Scheduler()
	if err != nil {
		t.Fatal(err)
	}
	nr, err := l.NrRequests()
	if err != nil {
		t.Fatal(err)
	}
	if sched != "none" || nr != want {
		t.Errorf("%s: scheduler %q, nr_requests %d; want the driver's defaults \"none\", %d", l.Name(), sched, nr, want)
	}
}

func TestFastDiskQueue(t *testing.T) {
	dir := scratch(t)
	d, err := NewFastDisk(dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("%s over tmpfs, direct i/o %v", d.Device(), d.DirectIO())
	checkDefaultQueue(t, d.Loop)

	tests := []struct {
		sched string
		nr    int
	}{
		{"mq-deadline", 4},
		{"none", 4},
		{"mq-deadline", 64},
		{"none", 32},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.sched, tt.nr), func(t *testing.T) {
			if err := d.SetScheduler(tt.sched); err != nil {
				t.Fatal(err)
			}
			if err := d.SetNrRequests(tt.nr); err != nil {
				t.Fatal(err)
			}
			s, err := readSysfs(filepath.Join(sysBlock, d.Name(), "queue", "scheduler"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "[" + tt.sched + "]"; !strings.Contains(s, want) {
				t.Errorf("queue/scheduler = %q, want %s selected", s, want)
			}
			nr, err := readSysfs(filepath.Join(sysBlock, d.Name(), "queue", "nr_requests"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := nr, strconv.Itoa(tt.nr); got != want {
				t.Errorf("queue/nr_requests = %s, want %s", got, want)
			}
			// The device works at that depth: fio writes, reads back and verifies.
			r := fio(t, "--name=v", "--filename="+d.Device(), "--direct=1", "--rw=randwrite", "--bs=4k",
				"--size=8m", "--iodepth=16", "--ioengine=libaio", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0")
			if got := r.Jobs[0].Write.TotalIOs; got != 2048 {
				t.Errorf("fio wrote %d blocks, want 2048", got)
			}
		})
	}

	// Close leaves the device as the driver makes it, whatever the test set.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := backingFile(d.Name()); err == nil {
		t.Logf("%s bound again by someone else; not checking its queue", d.Name())
		return
	}
	checkDefaultQueue(t, d.Loop)
}

func TestCleanupLeftovers(t *testing.T) {
	dir := scratch(t)
	d, err := NewSlowDisk(dir, 16<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The disk is forgotten below, as by a crashed run; Close must still be
	// safe once CleanupLeftovers has torn it down.
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close after CleanupLeftovers: %v", err)
		}
	})
	fio(t, "--name=t", "--filename="+d.Device(), "--direct=1", "--rw=randread", "--bs=4k",
		"--ioengine=psync", "--number_ios=10")

	removed, err := CleanupLeftovers(dir)
	if err != nil {
		t.Fatalf("CleanupLeftovers: %v", err)
	}
	t.Logf("removed %q", removed)
	canonDir := filepath.Dir(d.root)
	for _, want := range []string{d.Device(), d.mnt, canonDir} {
		if !slices.Contains(removed, want) {
			t.Errorf("CleanupLeftovers removed %q, want it to include %s", removed, want)
		}
	}
	checkGone(t, d, canonDir)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there: %v", dir, err)
	}
}

// TestCleanupLeftoversAfterCrash kills a process that made a slow disk, so
// that its FUSE server is really gone, and cleans up after it.
func TestCleanupLeftoversAfterCrash(t *testing.T) {
	dir := scratch(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	var dev string
	select {
	case dev = <-line:
	case <-time.After(30 * time.Second):
		t.Fatal("crash helper did not make its disk in 30s")
	}
	if !strings.HasPrefix(dev, "/dev/loop") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash helper printed %q: %s", dev, stderr.String())
	}
	name := strings.TrimPrefix(dev, "/dev/")
	backing, err := backingFile(name)
	if err != nil {
		t.Fatal(err)
	}
	canonDir, err := canonical(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	removed, err := CleanupLeftovers(dir)
	if err != nil {
		t.Fatalf("CleanupLeftovers: %v", err)
	}
	t.Logf("removed %q", removed)
	if !slices.Contains(removed, dev) {
		t.Errorf("CleanupLeftovers removed %q, want it to include %s", removed, dev)
	}
	if b, err := backingFile(name); err == nil && b == backing {
		t.Errorf("%s still bound to %s", dev, b)
	}
	if ms, err := mountsUnder(canonDir); err != nil || len(ms) > 0 {
		t.Errorf("mounts left: %v, %v", ms, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there: %v", dir, err)
	}
}

func TestCleanupLeftoversNothingThere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never-made")
	removed, err := CleanupLeftovers(dir)
	if err != nil || len(removed) > 0 {
		t.Errorf("CleanupLeftovers(%s) = %q, %v; want nothing, no error", dir, removed, err)
	}
	for _, dir := range []string{"", "/"} {
		if _, err := CleanupLeftovers(dir); err == nil {
			t.Errorf("CleanupLeftovers(%q): no error", dir)
		}
	}
}

func TestIsUnder(t *testing.T) {
	tests := []struct {
		dir, path string
		want      bool
	}{
		{"/tmp/x", "/tmp/x/a", true},
		{"/tmp/x", "/tmp/x/a/b", true},
		{"/tmp/x", "/tmp/x", false},
		{"/tmp/x", "/tmp/xy/a", false},
		{"/tmp/x", "/tmp", false},
		{"/", "/a", true},
	}
	for _, tt := range tests {
		if got := isUnder(tt.dir, tt.path); got != tt.want {
			t.Errorf("isUnder(%q, %q) = %v, want %v", tt.dir, tt.path, got, tt.want)
		}
	}
}

func TestParseDevNum(t *testing.T) {
	tests := []struct {
		in           string
		major, minor uint32
		ok           bool
	}{
		{"7:3\n", 7, 3, true},
		{"259:12", 259, 12, true},
		{"7", 0, 0, false},
		{"a:b", 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, err := parseDevNum(tt.in)
		if (err == nil) != tt.ok || major != tt.major || minor != tt.minor {
			t.Errorf("parseDevNum(%q) = %d, %d, %v; want %d, %d, ok %v", tt.in, major, minor, err, tt.major, tt.minor, tt.ok)
		}
	}
}

func TestCheckSize(t *testing.T) {
	for _, size := range []int64{0, -4096, 1000, 4097} {
		if err := checkSize(size); err == nil {
			t.Errorf("checkSize(%d): no error", size)
		}
	}
	if err := checkSize(1 << 20); err != nil {
		t.Errorf("checkSize(1 MiB): %v", err)
	}
}

// Evict drops a file's pages, and only that file's, from the page cache.
func TestEvict(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		privtest.Skip(t, dir+" is on tmpfs, whose pages cannot be evicted")
	}
	resident := func(path string) int {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := unix.Mmap(int(f.Fd()), 0, 1<<20, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(m)
		vec := make([]byte, len(m)/os.Getpagesize())
		// x/sys/unix has no Mincore for Linux.
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatalf("mincore: %v", e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pages := (1 << 20) / os.Getpagesize()
	if n := resident(a); n != pages {
		privtest.Skip(t, fmt.Sprintf("%d of %d pages of a fresh file resident: the page cache does not keep them here", n, pages))
	}
	if err := Evict(a); err != nil {
		t.Fatal(err)
	}
	if n := resident(a); n != 0 {
		t.Errorf("%d pages of the evicted file still resident", n)
	}
	if n := resident(b); n != pages {
		t.Errorf("%d of %d pages of the other file resident after evicting the first", n, pages)
	}
	if err := Evict(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Evict of a missing file: %v, want an error naming it", err)
	}
}
