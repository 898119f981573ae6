package pagefault

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseMapsLine(t *testing.T) {
	for _, c := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"7f3a1c000000-7f3a1d000000 r--s 00200000 07:01 12 /data/sstable-1-Data.db",
			mapping{0x7f3a1c000000, 0x7f3a1d000000, 0x200000, "/data/sstable-1-Data.db"}, true},
		{"55d0c0a00000-55d0c0a21000 r-xp 00001000 fd:00 1048601                    /usr/bin/a b (deleted)",
			mapping{0x55d0c0a00000, 0x55d0c0a21000, 0x1000, "/usr/bin/a b (deleted)"}, true},
		{"55d0c2b7e000-55d0c2b9f000 rw-p 00000000 00:00 0                          [heap]", mapping{}, false},
		{"7ffd5e9d9000-7ffd5e9dd000 r--p 00000000 00:00 0                          [vvar]", mapping{}, false},
		{"7f3a1e000000-7f3a1e021000 rw-p 00000000 00:00 0 ", mapping{}, false},
		{"7f3a1e000000-7f3a1e021000 rw-p 00000000 00:00 0", mapping{}, false},
	} {
		got, ok, err := parseMapsLine(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%q: got %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
	for _, bad := range []string{"", "zz-10 r--p 0 00:00 5 /x", "10-20 r--p"} {
		if _, _, err := parseMapsLine(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// An address resolves to the file and the byte offset in it; a mapping
// made after the last read is found by reading the maps again.
func TestMappingsResolve(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "maps"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1000-3000 r--s 00004000 07:01 12 /data/a\n5000-6000 rw-p 00000000 00:00 0\n")
	m := newMappings(proc)
	now := time.Now()
	if f, off, ok := m.resolve(42, 0x2010, now); !ok || f != "/data/a" || off != 0x5010 {
		t.Errorf("resolve 0x2010 = %q %#x %v, want /data/a 0x5010", f, off, ok)
	}
	if _, _, ok := m.resolve(42, 0x5010, now); ok {
		t.Error("anonymous memory resolved to a file")
	}
	write("1000-3000 r--s 00004000 07:01 12 /data/a\n8000-9000 r--s 00000000 07:01 13 /data/b\n")
	if f, off, ok := m.resolve(42, 0x8100, now.Add(time.Millisecond)); !ok || f != "/data/b" || off != 0x100 {
		t.Errorf("new mapping: %q %#x %v, want /data/b 0x100", f, off, ok)
	}
	if _, _, ok := m.resolve(43, 0x2010, now); ok {
		t.Error("a process without maps resolved an address")
	}
}
