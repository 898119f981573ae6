package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrPrivileges is returned, wrapped, by CheckPrivileges when the process
// cannot load BPF programs. Callers test for it with errors.Is.
var ErrPrivileges = errors.New("insufficient privileges")

// Capability numbers from linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38 // Linux 5.8
	capBPF      = 39 // Linux 5.8
)

// CheckPrivileges returns an error wrapping ErrPrivileges, naming the missing
// capabilities, unless the process's effective set holds CAP_SYS_ADMIN or
// both CAP_BPF and CAP_PERFMON (what loading tracing programs needs since
// Linux 5.8). It reads /proc/self/status rather than checking the uid, so a
// non-root agent given ambient capabilities by systemd passes.
func CheckPrivileges() error {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	eff, err := parseCapEff(f)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	return checkCaps(eff, os.Geteuid())
}

func checkCaps(eff uint64, euid int) error {
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("%w: uid %d has effective capabilities %#016x, missing %s (or CAP_SYS_ADMIN)",
		ErrPrivileges, euid, eff, strings.Join(missing, " and "))
}

// parseCapEff finds the CapEff line of proc(5) /proc/<pid>/status, the
// effective capability set as 16 hex digits.
func parseCapEff(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "CapEff" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(value), err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line")
}
