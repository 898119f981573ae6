package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/mountinfo"
)

// requiredMount is a filesystem the agent needs mounted.
type requiredMount struct {
	point  string
	fstype string
	data   string // mount options
	why    string
}

// requiredMounts are mounted by EnsureMounts when missing. Minimal hosts and
// containers often lack them, and without them probes fail with errors about
// files that do not say "mount tracefs".
var requiredMounts = []requiredMount{
	{
		point:  "/sys/kernel/tracing",
		fstype: "tracefs",
		why:    "tracepoint probes read event ids from it",
	},
	{
		point:  "/sys/fs/bpf",
		fstype: "bpf",
		// Only the root-run agent pins there; systemd mounts it 0700 too.
		data: "mode=0700",
		why:  "maps and links are pinned in it",
	},
}

// EnsureMounts mounts tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf
// when they are not mounted there, and logs each mount it makes.
func EnsureMounts(logger *slog.Logger) error {
	mounts, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	return ensureMounts(logger, mounts, os.Stat, func(source, point, fstype, data string) error {
		return unix.Mount(source, point, fstype, 0, data)
	})
}

// ensureMounts is EnsureMounts with the system calls passed in, for tests.
func ensureMounts(logger *slog.Logger, mounts []mountinfo.Mount,
	stat func(string) (os.FileInfo, error),
	mount func(source, point, fstype, data string) error,
) error {
	// The last entry for a mount point is the one on top, the one a path
	// lookup sees.
	top := make(map[string]string, len(mounts))
	for _, m := range mounts {
		top[m.Point] = m.FSType
	}
	for _, r := range requiredMounts {
		fstype, mounted := top[r.point]
		switch {
		case mounted && fstype == r.fstype:
			continue
		case mounted:
			return fmt.Errorf("%s has %s mounted on it, want %s (%s)", r.point, fstype, r.fstype, r.why)
		}
		if _, err := stat(r.point); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("mount %s at %s: the mount point does not exist; is the kernel built without %s support?", r.fstype, r.point, r.fstype)
			}
			return fmt.Errorf("mount %s at %s: %w", r.fstype, r.point, err)
		}
		if err := mount(r.fstype, r.point, r.fstype, r.data); err != nil {
			return fmt.Errorf("mount %s at %s (%s): %w", r.fstype, r.point, r.why, err)
		}
		logger.Info("mounted filesystem", "fstype", r.fstype, "at", r.point)
	}
	return nil
}
