package blockio

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeSysfs lays out a sysfs tree like the kernel's (built at run time: ':' may
// not appear in a Go module's file names).
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(devno, target string) {
		if err := os.Symlink(filepath.Join("..", "..", target), filepath.Join(root, "dev", "block", devno)); err != nil {
			t.Fatal(err)
		}
	}
	mk("dev/block")
	mk("devices/virtual/block/loop3")
	mk("devices/pci0000:00/nvme/nvme0n1/nvme0n1p2")
	if err := os.WriteFile(filepath.Join(root, "devices/pci0000:00/nvme/nvme0n1/nvme0n1p2/partition"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link("7:3", "devices/virtual/block/loop3")
	link("259:0", "devices/pci0000:00/nvme/nvme0n1")
	link("259:2", "devices/pci0000:00/nvme/nvme0n1/nvme0n1p2")
	return root
}

func TestDevName(t *testing.T) {
	n := newDevNamer(fakeSysfs(t))
	tests := []struct {
		major, minor uint32
		want         string
	}{
		{7, 3, "loop3"},
		{259, 0, "nvme0n1"},
		{259, 2, "nvme0n1"}, // a partition folds into its disk
		{8, 16, "8:16"},     // gone: named by number, nothing lost
	}
	for _, tt := range tests {
		if got := n.name(tt.major<<20 | tt.minor); got != tt.want {
			t.Errorf("name(%d:%d) = %q, want %q", tt.major, tt.minor, got, tt.want)
		}
	}
	// Unresolved names are not cached; resolved ones are, until forgotten.
	if _, ok := n.cache[8<<20|16]; ok {
		t.Error("unresolved device was cached")
	}
	n.forget(map[uint32]bool{7<<20 | 3: true})
	if _, ok := n.cache[259<<20]; ok {
		t.Error("forget kept a dead device")
	}
	if _, ok := n.cache[7<<20|3]; !ok {
		t.Error("forget dropped a live device")
	}
}

func TestSplitDev(t *testing.T) {
	major, minor := splitDev(259<<20 | 1048575)
	if major != 259 || minor != 1048575 {
		t.Errorf("splitDev = %d:%d, want 259:1048575", major, minor)
	}
}
