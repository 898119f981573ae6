package preflight

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/blockio"
)

// testDisk is a small burn-in, so that a slow disk gets through it.
var testDisk = DiskSpec{Size: 4 << 20, BlockSize: 4096, Duration: 2 * time.Second, Pattern: "randrw", Depth: 1,
	Timeout: 60 * time.Second, MaxP99: 50 * time.Millisecond}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scratch checks the test can run and returns a scratch directory for
// fault disks, checked for leftovers when the test ends.
func scratch(t *testing.T) string {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "losetup", "mkfs.ext4")
	dir := filepath.Join(t.TempDir(), "faults")
	t.Cleanup(func() {
		if _, err := faults.CleanupLeftovers(dir); err != nil {
			t.Errorf("CleanupLeftovers(%s): %v", dir, err)
		}
	})
	return dir
}

// mountExt4 makes an ext4 filesystem on dev and mounts it until the test
// ends; it returns the mount point.
func mountExt4(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", dev, err, out)
	}
	mnt := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

// assertNoScratch checks the burn-in left no file in mnt.
func assertNoScratch(t *testing.T, mnt string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(mnt, scratchPrefix+"*")); len(m) > 0 {
		t.Errorf("scratch files left behind: %v", m)
	}
}

// A drive whose every request takes 60ms fails the 50ms goal, and the
// measured p99 is at least the injected delay.
func TestDiskSlow(t *testing.T) {
	dir := scratch(t)
	const delay = 60 * time.Millisecond
	d, err := faults.NewSlowDisk(dir, 32<<20, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	mnt := mountExt4(t, d.Device())

	c := checkDisk(context.Background(), discard(), mnt, testDisk)
	t.Logf("%s: %s", c.Figure, c.Reason)
	if c.Pass {
		t.Fatalf("burn-in of a %v disk passed: %s", delay, c.Figure)
	}
	p99 := time.Duration(c.Disk.P99Seconds * float64(time.Second))
	if p99 < delay*98/100 {
		t.Errorf("p99 %v below the injected delay %v", p99, delay)
	}
	want := "disk " + mnt + ": p99 " + formatDuration(p99) + " above 50ms"
	if c.Reason != want {
		t.Errorf("reason %q, want %q", c.Reason, want)
	}
	if c.Disk.Source != d.Device() || c.Disk.FSType != "ext4" || c.Disk.MountPoint != mnt {
		t.Errorf("mount %s %s %s, want %s %s ext4", c.Disk.MountPoint, c.Disk.Source, c.Disk.FSType, mnt, d.Device())
	}
	if c.Disk.Reads == 0 || c.Disk.Writes == 0 {
		t.Errorf("randrw made %d reads and %d writes, want both", c.Disk.Reads, c.Disk.Writes)
	}
	assertNoScratch(t, mnt)
}

// A healthy drive passes, and the figures hang together.
func TestDiskHealthy(t *testing.T) {
	dir := scratch(t)
	d, err := faults.NewFastDisk(dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	mnt := mountExt4(t, d.Device())
	// A leftover of a killed run: removed. A file of a live process: kept.
	dead := filepath.Join(mnt, scratchPrefix+strconv.Itoa(deadPID(t)))
	live := filepath.Join(mnt, scratchPrefix+"1")
	for _, f := range []string{dead, live} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	spec := testDisk
	spec.Size, spec.Duration, spec.Depth = 16<<20, time.Second, 4
	spec.MinBytesPerSecond = 1 << 20
	c := checkDisk(context.Background(), discard(), mnt, spec)
	t.Logf("%s", c.Figure)
	if !c.Pass {
		t.Fatalf("burn-in of a healthy disk failed: %s", c.Reason)
	}
	f := c.Disk
	n := f.Reads + f.Writes
	if n == 0 || f.P50Seconds > f.P99Seconds || f.P99Seconds > f.MaxSeconds || f.P99Seconds >= 0.05 {
		t.Errorf("figures out of order: %+v", f)
	}
	if got, want := f.BytesPerSecond, float64(n)*4096/f.Seconds; got < want*0.999 || got > want*1.001 {
		t.Errorf("throughput %v, want %d requests of 4096 bytes over %vs = %v", got, n, f.Seconds, want)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("leftover of a dead process %s not removed: %v", dead, err)
	}
	if err := os.Remove(live); err != nil {
		t.Errorf("scratch file of a live process removed: %v", err)
	}
	assertNoScratch(t, mnt)
}

// deadPID returns the pid of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestDiskMissing(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "absent")
	c := checkDisk(context.Background(), discard(), mnt, testDisk)
	if want := "disk " + mnt + ": not found (is the data disk mounted?)"; c.Pass || c.Reason != want {
		t.Errorf("pass %v, reason %q; want %q", c.Pass, c.Reason, want)
	}
}

func TestDiskNoSpace(t *testing.T) {
	spec := testDisk
	spec.Size = 1 << 50
	dir := t.TempDir()
	c := checkDisk(context.Background(), discard(), dir, spec)
	if c.Pass || !strings.HasPrefix(c.Reason, "disk "+dir+": ") || !strings.HasSuffix(c.Reason, "MiB free, the burn-in needs 1073741824 MiB") {
		t.Errorf("pass %v, reason %q", c.Pass, c.Reason)
	}
}

func TestBPF(t *testing.T) {
	privtest.Root(t)
	c := checkBPF(context.Background(), discard(), blockio.Config{BucketsPerOctave: 2})
	t.Logf("%s", c.Figure)
	if !c.Pass {
		t.Fatalf("block I/O probe cannot run here: %s", c.Reason)
	}
	if c.BPF.Mode != "tp_btf" && c.BPF.Mode != "raw_tp" {
		t.Errorf("mode %q", c.BPF.Mode)
	}
	if c.BPF.Features["btf"] != "yes" {
		t.Errorf("btf %q, but the probe loaded", c.BPF.Features["btf"])
	}
}
