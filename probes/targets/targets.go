// Package targets turns the process groups an operator names in the config
// (a systemd unit, a cgroup, or a process name) into what BPF programs can
// match cheaply: cgroup v2 ids and thread-group ids. Probes label their
// per-target series with the target's name, so labels stay bounded by the
// config, never by pids.
package targets

import (
	"errors"
	"fmt"
	"io/fs"

	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"

	"github.com/nervehq/nerve/internal/mountinfo"
)

// Target is one named group of processes. Exactly one of SystemdUnit,
// Cgroup and Process is set.
type Target struct {
	// Name is the target's value of the target label; "node" is reserved
	// for node-wide series.
	Name        string `yaml:"name"`
	SystemdUnit string `yaml:"systemd_unit,omitempty"` // the unit's cgroup and all below it, e.g. cassandra.service
	Cgroup      string `yaml:"cgroup,omitempty"`       // path under the cgroup v2 root, e.g. /system.slice/cassandra.service
	Process     string `yaml:"process,omitempty"`      // processes by comm or executable base name, e.g. java
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]{0,62}$`)

// Validate checks one target; errors name the field.
func (t Target) Validate() error {
	if !nameRE.MatchString(t.Name) {
		return fmt.Errorf("name: %q must start with a letter or _ and hold at most 63 letters, digits, '_', '.' or '-'", t.Name)
	}
	set := 0
	for _, s := range []string{t.SystemdUnit, t.Cgroup, t.Process} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("target %q: exactly one of systemd_unit, cgroup and process must be set", t.Name)
	}
	if t.Cgroup != "" && strings.Contains(t.Cgroup, "..") {
		return fmt.Errorf("target %q: cgroup: %q must not contain '..'", t.Name, t.Cgroup)
	}
	if t.SystemdUnit != "" && strings.ContainsAny(t.SystemdUnit, "/ ") {
		return fmt.Errorf("target %q: systemd_unit: %q is not a unit name", t.Name, t.SystemdUnit)
	}
	if t.Process != "" && (strings.Contains(t.Process, "/") || len(t.Process) > 255) {
		return fmt.Errorf("target %q: process: %q must be a command or executable name, not a path", t.Name, t.Process)
	}
	return nil
}

// Node is the target label of node-wide series; no target may take it.
const Node = "node"

// ValidateAll checks a list of targets, including that names are unique and
// that none is the reserved Node.
func ValidateAll(ts []Target, max int) error {
	if len(ts) > max {
		return fmt.Errorf("at most %d targets, got %d", max, len(ts))
	}
	seen := map[string]bool{}
	for i, t := range ts {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("targets[%d]: %w", i, err)
		}
		if t.Name == Node {
			return fmt.Errorf("targets[%d]: name %q is reserved for the node-wide series", i, Node)
		}
		if seen[t.Name] {
			return fmt.Errorf("targets[%d]: name %q is used twice", i, t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

// Set is the resolved form: which cgroups and thread groups belong to which
// target, by index into the target list.
type Set struct {
	Cgroups map[uint64]uint32 // cgroup v2 id (the directory's inode) -> target index
	Tgids   map[uint32]uint32 // tgid -> target index
	Found   []bool            // per target: something matched
}

// Resolver reads cgroupfs and procfs.
type Resolver struct {
	CgroupRoot string // "/sys/fs/cgroup"
	Proc       string // "/proc"
}

// Default reads the host's filesystems: the cgroup v2 hierarchy wherever it
// is mounted (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
// hybrid one), and /proc.
func Default() Resolver {
	root, err := CgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		root = "/sys/fs/cgroup"
	}
	return Resolver{CgroupRoot: root, Proc: "/proc"}
}

// CgroupV2Root finds the mount point of the cgroup2 filesystem in a
// mountinfo file.
func CgroupV2Root(mountinfoPath string) (string, error) {
	ms, err := mountinfo.Read(mountinfoPath)
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return cgroupV2Root(ms)
}

func cgroupV2Root(ms []mountinfo.Mount) (string, error) {
	for _, m := range ms {
		if m.FSType == "cgroup2" {
			return m.Point, nil
		}
	}
	return "", errors.New("find cgroup2 mount: no cgroup2 filesystem is mounted")
}

// Resolve maps every target to its cgroups and processes as they are now.
// A target that matches nothing is not an error (the service may be down);
// Found says which matched.
func (r Resolver) Resolve(ts []Target) (*Set, error) {
	s := &Set{Cgroups: map[uint64]uint32{}, Tgids: map[uint32]uint32{}, Found: make([]bool, len(ts))}
	var procs procfs.Procs
	for i, t := range ts {
		idx := uint32(i)
		switch {
		case t.Cgroup != "":
			n, err := r.addCgroupTree(s, filepath.Join(r.CgroupRoot, filepath.Clean("/"+t.Cgroup)), idx)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", t.Name, err)
			}
			s.Found[i] = n > 0
		case t.SystemdUnit != "":
			dirs, err := r.findUnit(t.SystemdUnit)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", t.Name, err)
			}
			for _, d := range dirs {
				n, err := r.addCgroupTree(s, d, idx)
				if err != nil {
					return nil, fmt.Errorf("target %q: %w", t.Name, err)
				}
				s.Found[i] = s.Found[i] || n > 0
			}
		case t.Process != "":
			if procs == nil {
				fsys, err := procfs.NewFS(r.Proc)
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", r.Proc, err)
				}
				if procs, err = fsys.AllProcs(); err != nil {
					return nil, fmt.Errorf("list processes: %w", err)
				}
			}
			for _, p := range procs {
				if matchProcess(p, t.Process) {
					if _, taken := s.Tgids[uint32(p.PID)]; !taken {
						s.Tgids[uint32(p.PID)] = idx
					}
					s.Found[i] = true
				}
			}
		}
	}
	return s, nil
}

func matchProcess(p procfs.Proc, name string) bool {
	if comm, err := p.Comm(); err == nil && comm == name {
		return true
	}
	if exe, err := p.Executable(); err == nil && filepath.Base(exe) == name {
		return true
	}
	return false
}

// addCgroupTree adds dir and every cgroup below it; a missing dir adds nothing.
func (r Resolver) addCgroupTree(s *Set, dir string, idx uint32) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if _, taken := s.Cgroups[st.Ino]; !taken {
			s.Cgroups[st.Ino] = idx
		}
		n++
		return nil
	})
	return n, err
}

// findUnit finds the cgroup directories named after a systemd unit anywhere
// in the hierarchy (system.slice, user slices, machine slices).
func (r Resolver) findUnit(unit string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(r.CgroupRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if d.IsDir() && d.Name() == unit {
			out = append(out, path)
			return filepath.SkipDir // its children are added with it
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no cgroup v2 hierarchy at %s", r.CgroupRoot)
	}
	return out, err
}

// CgroupID returns the cgroup v2 id of a cgroup directory (its inode number),
// as bpf_get_current_cgroup_id and kernfs ids give it.
func CgroupID(dir string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	return st.Ino, nil
}
