package usdt

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nervehq/nerve/internal/privtest"
)

func TestParseArgs(t *testing.T) {
	got, err := ParseArgs("8@%r12 8@%rdx -4@%eax 1@%dil -8@16(%rbp) 4@$42 4@-8(%r13d)")
	if err != nil {
		t.Fatal(err)
	}
	want := []Arg{
		{Size: 8, Kind: ArgRegister, Register: "r12"},
		{Size: 8, Kind: ArgRegister, Register: "dx"},
		{Size: 4, Signed: true, Kind: ArgRegister, Register: "ax"},
		{Size: 1, Kind: ArgRegister, Register: "di"},
		{Size: 8, Signed: true, Kind: ArgMemory, Register: "bp", Offset: 16},
		{Size: 4, Kind: ArgConst, Offset: 42},
		{Size: 4, Kind: ArgMemory, Register: "r13", Offset: -8},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d args, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("arg %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"8", "3@%rax", "8@%foo", "8@16(rbp)", "x@%rax", "8@"} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q) gave no error", bad)
		}
	}
}

// mkNote builds one stapsdt note as the compiler would.
func mkNote(addr, base, sema uint64, provider, name, args string) []byte {
	desc := make([]byte, 24)
	binary.LittleEndian.PutUint64(desc, addr)
	binary.LittleEndian.PutUint64(desc[8:], base)
	binary.LittleEndian.PutUint64(desc[16:], sema)
	desc = append(desc, provider+"\x00"+name+"\x00"+args+"\x00"...)
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b, 8)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(b[8:], 3)
	b = append(b, "stapsdt\x00"...)
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseNotes(t *testing.T) {
	data := append(mkNote(0x1000, 0x2000, 0, "hs_private", "safepoint__begin", ""),
		mkNote(0x1100, 0x2000, 0x3000, "hotspot", "vmops__begin", "8@%r12 8@%rdx")...)
	ns, err := parseNotes(data, binary.LittleEndian, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].Name != "safepoint__begin" || ns[1].Provider != "hotspot" || ns[1].Semaphore != 0x3000 || len(ns[1].Args) != 2 {
		t.Errorf("parsed %+v", ns)
	}
	for name, bad := range map[string][]byte{
		"truncated header": data[:5],
		"name past end":    append([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0}, 'x'),
		"no NULs":          func() []byte { b := mkNote(1, 2, 0, "p", "n", ""); return b[:len(b)-8] }(),
	} {
		if _, err := parseNotes(bad, binary.LittleEndian, true); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseNotes(f *testing.F) {
	f.Add(mkNote(0x1000, 0x2000, 0, "hotspot", "gc__begin", "1@%dil"))
	f.Add([]byte{8, 0, 0, 0, 255, 255, 255, 127, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		parseNotes(data, binary.LittleEndian, true)
		parseNotes(data, binary.BigEndian, false)
	})
}

// The probes HotSpot really ships: Debian's Java 17 has the safepoint probes
// under hs_private and the rest under hotspot.
func TestLibjvm(t *testing.T) {
	libs, _ := filepath.Glob("/usr/lib/jvm/*/lib/server/libjvm.so")
	if len(libs) == 0 {
		privtest.Skip(t, "no libjvm.so on this machine")
	}
	probes, err := Read(libs[0])
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]Probe{}
	for _, p := range probes {
		found[p.Provider+":"+p.Name] = p
	}
	for _, want := range []string{"hs_private:safepoint__begin", "hs_private:safepoint__end", "hotspot:gc__begin", "hotspot:gc__end", "hotspot:vmops__begin", "hotspot:vmops__end"} {
		p, ok := found[want]
		if !ok {
			t.Errorf("%s: no %s among %d probes", libs[0], want, len(probes))
			continue
		}
		if p.Offset == 0 {
			t.Errorf("%s: zero file offset", want)
		}
	}
	if v := found["hotspot:vmops__begin"]; len(v.Args) < 2 || v.Args[0].Kind != ArgRegister {
		t.Errorf("vmops__begin args = %+v, want the name pointer and length in registers", v.Args)
	}
	// The file offset must point at a nop (0x90, or 0x0f 0x1f ...), where the compiler put the probe.
	b, err := os.ReadFile(libs[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range found {
		if !strings.HasPrefix(name, "hs_private:safepoint") {
			continue
		}
		if op := b[p.Offset]; op != 0x90 && op != 0x0f {
			t.Errorf("%s: byte at offset %#x is %#x, not a nop", name, p.Offset, op)
		}
	}
}
