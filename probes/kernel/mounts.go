package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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

// mountEntry is one line of /proc/self/mountinfo, reduced to what matters here.
type mountEntry struct {
	point  string
	fstype string
}

// EnsureMounts mounts tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf
// when they are not mounted there, and logs each mount it makes.
func EnsureMounts(logger *slog.Logger) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountInfo(f)
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	return ensureMounts(logger, mounts, os.Stat, func(source, point, fstype, data string) error {
		return unix.Mount(source, point, fstype, 0, data)
	})
}

// ensureMounts is EnsureMounts with the system calls passed in, for tests.
func ensureMounts(logger *slog.Logger, mounts []mountEntry,
	stat func(string) (os.FileInfo, error),
	mount func(source, point, fstype, data string) error,
) error {
	// The last entry for a mount point is the one on top, the one a path
	// lookup sees.
	top := make(map[string]string, len(mounts))
	for _, m := range mounts {
		top[m.point] = m.fstype
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

// parseMountInfo reads the format of proc(5) /proc/<pid>/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
//
// The mount point is field 5; the filesystem type is the first field after
// the "-" that ends the variable list of optional fields.
func parseMountInfo(r io.Reader) ([]mountEntry, error) {
	var mounts []mountEntry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, sc.Text())
		}
		mounts = append(mounts, mountEntry{point: unescapeOctal(fields[4]), fstype: fields[sep+1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return mounts, nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash in mount points (\040, \011, \012, \134).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
