package blockio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// devName turns a kernel dev_t (MAJOR << 20 | MINOR, as the BPF program
// stores it) into a device name such as "sda" or "nvme0n1", folding
// partitions into their disk. Names are cached; a device that cannot be
// resolved (already removed) is named "major:minor" so that no count is lost.
type devNamer struct {
	sysfs string // root of sysfs, "/sys" outside tests

	mu    sync.Mutex        // guards cache
	cache map[uint32]string // dev_t -> name
}

func newDevNamer(sysfs string) *devNamer {
	return &devNamer{sysfs: sysfs, cache: make(map[uint32]string)}
}

func splitDev(dev uint32) (major, minor uint32) { return dev >> 20, dev & (1<<20 - 1) }

func (n *devNamer) name(dev uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.cache[dev]; ok {
		return s
	}
	s, err := n.resolve(dev)
	if err != nil {
		major, minor := splitDev(dev)
		return fmt.Sprintf("%d:%d", major, minor) // not cached: the device may appear later
	}
	n.cache[dev] = s
	return s
}

// forget drops cached names of devices that are gone, so that a dev_t reused
// by a new device gets its new name.
func (n *devNamer) forget(live map[uint32]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for dev := range n.cache {
		if !live[dev] {
			delete(n.cache, dev)
		}
	}
}

func (n *devNamer) resolve(dev uint32) (string, error) {
	major, minor := splitDev(dev)
	link := filepath.Join(n.sysfs, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("resolve block device %d:%d: %w", major, minor, err)
	}
	// A partition's directory holds a "partition" file and sits inside its disk's.
	if _, err := os.Stat(filepath.Join(target, "partition")); err == nil {
		target = filepath.Dir(target)
	}
	name := filepath.Base(target)
	if name == "" || name == "." || name == "/" || strings.ContainsAny(name, " \n") {
		return "", fmt.Errorf("resolve block device %d:%d: odd sysfs name %q", major, minor, name)
	}
	return name, nil
}
