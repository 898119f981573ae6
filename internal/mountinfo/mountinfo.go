// Package mountinfo reads /proc/<pid>/mountinfo (proc(5)): the one parser of
// it that the agent (tracefs/bpffs checks), the cgroup v2 lookup and the
// fault injector (unmounting what it made) share.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo, the parts nerve uses.
type Mount struct {
	Point  string // mount point, unescaped
	FSType string // "tmpfs", "cgroup2", "fuse.nervefaults", ...
	Source string // unescaped
}

// Read parses the mountinfo file at path, e.g. "/proc/self/mountinfo".
func Read(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("read mounts from %s: %w", path, err)
	}
	return ms, nil
}

// Parse reads the format
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
//
// The mount point is field 5; the filesystem type and source are the first
// two fields after the "-" that ends the variable list of optional fields.
// Order is kept: for a point mounted twice, the later entry is on top.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 6 || len(tail) < 2 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		out = append(out, Mount{Point: Unescape(fields[4]), FSType: tail[0], Source: Unescape(tail[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// Unescape undoes the kernel's octal escapes (\040 space, \011 tab, \012
// newline, \134 backslash) in mountinfo paths.
func Unescape(s string) string {
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
