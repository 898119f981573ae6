package canary

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/privtest"
)

func TestCheckHealthyAndMissing(t *testing.T) {
	c := New(2 * time.Second)
	dir := t.TempDir() // tmpfs has no O_DIRECT on old kernels; /tmp here is a disk
	r := c.Check(context.Background(), dir)
	if r.Err != "" {
		// Some filesystems refuse O_DIRECT; that is an error worth reporting, not a crash.
		t.Logf("canary on %s: %s", dir, r.Err)
	}
	r = c.Check(context.Background(), filepath.Join(dir, "no-such-mount"))
	if r.Err == "" {
		t.Error("canary on a missing directory succeeded")
	}
}

// A drive that hangs longer than the timeout is a failed canary, and a
// second check does not pile another I/O onto it.
func TestCheckSlowDriveTimesOut(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "mkfs.ext4", "mount")
	scratch, err := os.MkdirTemp("", "nerve-canary-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.CleanupLeftovers(scratch) })
	disk, err := faults.NewSlowDisk(scratch, 32<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	mnt := filepath.Join(scratch, "fs")
	os.Mkdir(mnt, 0o755)
	for _, args := range [][]string{{"mkfs.ext4", "-q", "-F", disk.Device()}, {"mount", disk.Device(), mnt}} {
		if out, err := execCommand(args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	defer execCommand("umount", "-l", mnt)

	c := New(500 * time.Millisecond)
	if r := c.Check(context.Background(), mnt); r.Err != "" {
		t.Fatalf("healthy canary failed: %s", r.Err)
	}
	disk.SetDelay(2 * time.Second)
	r := c.Check(context.Background(), mnt)
	if r.Err == "" {
		t.Fatalf("canary on a 2 s drive succeeded in %v with a 500ms timeout", r.Latency)
	}
	r2 := c.Check(context.Background(), mnt)
	t.Logf("slow drive: %q then %q", r.Err, r2.Err)
	if r2.Err == "" || r2.Latency > time.Second {
		t.Errorf("second check while the first is stuck: %+v", r2)
	}
	disk.SetDelay(0)
}

func execCommand(args ...string) ([]byte, error) {
	return exec.Command(args[0], args[1:]...).CombinedOutput()
}
