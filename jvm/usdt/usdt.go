// Package usdt reads the SystemTap SDT probe notes (.note.stapsdt) of an ELF
// file, such as HotSpot's libjvm.so, and turns each probe's location into
// what a uprobe needs: a file offset, and the file offset of its semaphore.
//
// The format: each note of type 3 named "stapsdt" carries the probe's
// address, the link-time address of the .stapsdt.base section, the
// semaphore's address (0 when none), then three NUL-terminated strings:
// provider, name and the argument spec ("8@%r12 -4@%eax"). When the file was
// prelinked the addresses move with .stapsdt.base, so each is adjusted by the
// difference between that section's address now and the one in the note.
package usdt

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Probe is one USDT probe site. A probe name may have several sites.
type Probe struct {
	Provider, Name string
	Address        uint64 // virtual address, adjusted for .stapsdt.base
	Offset         uint64 // file offset, for the uprobe
	Semaphore      uint64 // file offset of the semaphore; 0 when none
	Args           []Arg
}

// ArgKind says where an argument lives.
type ArgKind int

// Argument locations.
const (
	ArgRegister ArgKind = iota // the value is in a register
	ArgMemory                  // the value is at Offset(Register)
	ArgConst                   // the value is the constant Offset
)

// Arg is one parsed argument spec such as "-4@%eax" or "8@16(%rbp)".
type Arg struct {
	Size     int  // bytes, 1, 2, 4 or 8
	Signed   bool // a negative size in the spec
	Kind     ArgKind
	Register string // x86-64 register family name: "ax", "r12", ...
	Offset   int64
}

// Read parses the notes of the ELF file at path.
func Read(path string) ([]Probe, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("usdt: %w", err)
	}
	defer f.Close()
	probes, err := FromELF(f)
	if err != nil {
		return nil, fmt.Errorf("usdt: %s: %w", path, err)
	}
	return probes, nil
}

// FromELF parses the notes of an open ELF file. A file without SDT notes
// gives no probes and no error.
func FromELF(f *elf.File) ([]Probe, error) {
	sec := f.Section(".note.stapsdt")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .note.stapsdt: %w", err)
	}
	var baseAddr uint64
	if b := f.Section(".stapsdt.base"); b != nil {
		baseAddr = b.Addr
	}
	notes, err := parseNotes(data, f.ByteOrder, f.Class == elf.ELFCLASS64)
	if err != nil {
		return nil, err
	}
	out := make([]Probe, 0, len(notes))
	for _, n := range notes {
		p := n
		if baseAddr != 0 && n.base != 0 {
			p.Address += baseAddr - n.base
			if p.Semaphore != 0 {
				p.Semaphore += baseAddr - n.base
			}
		}
		off, err := fileOffset(f, p.Address)
		if err != nil {
			return nil, fmt.Errorf("probe %s:%s: %w", p.Provider, p.Name, err)
		}
		p.Offset = off
		if p.Semaphore != 0 {
			if p.Semaphore, err = fileOffset(f, p.Semaphore); err != nil {
				return nil, fmt.Errorf("probe %s:%s semaphore: %w", p.Provider, p.Name, err)
			}
		}
		out = append(out, p.Probe)
	}
	return out, nil
}

type note struct {
	Probe
	base uint64
}

// parseNotes walks the note section: namesz, descsz, type, name, desc, each
// 4-byte aligned.
func parseNotes(data []byte, order binary.ByteOrder, is64 bool) ([]note, error) {
	var out []note
	for off := 0; off < len(data); {
		if len(data)-off < 12 {
			return nil, fmt.Errorf("note at %d: truncated header", off)
		}
		namesz := int(order.Uint32(data[off:]))
		descsz := int(order.Uint32(data[off+4:]))
		typ := order.Uint32(data[off+8:])
		off += 12
		if namesz < 0 || descsz < 0 || namesz > len(data)-off {
			return nil, fmt.Errorf("note at %d: name size %d past the section", off-12, namesz)
		}
		name := data[off : off+namesz]
		off += align4(namesz)
		if off > len(data) || descsz > len(data)-off {
			return nil, fmt.Errorf("note at %d: descriptor size %d past the section", off, descsz)
		}
		desc := data[off : off+descsz]
		off += align4(descsz)
		if typ != 3 || string(bytes.TrimRight(name, "\x00")) != "stapsdt" {
			continue
		}
		n, err := parseDesc(desc, order, is64)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

func parseDesc(desc []byte, order binary.ByteOrder, is64 bool) (note, error) {
	w := 4
	if is64 {
		w = 8
	}
	if len(desc) < 3*w {
		return note{}, errors.New("stapsdt note: descriptor too short")
	}
	word := func(i int) uint64 {
		if is64 {
			return order.Uint64(desc[i*w:])
		}
		return uint64(order.Uint32(desc[i*w:]))
	}
	var n note
	n.Address, n.base, n.Semaphore = word(0), word(1), word(2)
	parts := bytes.SplitN(desc[3*w:], []byte{0}, 4)
	if len(parts) < 4 {
		return note{}, errors.New("stapsdt note: provider, name and arguments must each end in NUL")
	}
	n.Provider, n.Name = string(parts[0]), string(parts[1])
	if n.Provider == "" || n.Name == "" {
		return note{}, errors.New("stapsdt note: empty provider or name")
	}
	args, err := ParseArgs(string(parts[2]))
	if err != nil {
		return note{}, fmt.Errorf("probe %s:%s: %w", n.Provider, n.Name, err)
	}
	n.Args = args
	return n, nil
}

// fileOffset maps a virtual address to its offset in the file through the
// loadable segment that holds it.
func fileOffset(f *elf.File, addr uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if addr >= p.Vaddr && addr < p.Vaddr+p.Memsz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no loadable segment", addr)
}

// ParseArgs parses an SDT argument spec, e.g. "8@%r12 8@%rdx -4@%eax".
func ParseArgs(spec string) ([]Arg, error) {
	var out []Arg
	for _, f := range strings.Fields(spec) {
		a, err := parseArg(f)
		if err != nil {
			return nil, fmt.Errorf("argument %d %q: %w", len(out), f, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseArg(s string) (Arg, error) {
	sizeStr, loc, ok := strings.Cut(s, "@")
	if !ok {
		return Arg{}, errors.New("no size@location")
	}
	size, err := strconv.Atoi(sizeStr)
	if err != nil {
		return Arg{}, fmt.Errorf("size: %w", err)
	}
	a := Arg{Size: size, Signed: size < 0}
	if a.Signed {
		a.Size = -size
	}
	switch a.Size {
	case 1, 2, 4, 8:
	default:
		return Arg{}, fmt.Errorf("size %d is not 1, 2, 4 or 8", size)
	}
	switch {
	case strings.HasPrefix(loc, "$"):
		a.Kind = ArgConst
		a.Offset, err = strconv.ParseInt(loc[1:], 0, 64)
		if err != nil {
			return Arg{}, fmt.Errorf("constant: %w", err)
		}
	case strings.HasPrefix(loc, "%"):
		a.Kind = ArgRegister
		if a.Register, err = regFamily(loc[1:]); err != nil {
			return Arg{}, err
		}
	case strings.HasSuffix(loc, ")"):
		i := strings.IndexByte(loc, '(')
		if i < 0 || !strings.HasPrefix(loc[i+1:], "%") {
			return Arg{}, errors.New("memory operand must be offset(%reg)")
		}
		a.Kind = ArgMemory
		if i > 0 {
			if a.Offset, err = strconv.ParseInt(loc[:i], 0, 64); err != nil {
				return Arg{}, fmt.Errorf("offset: %w", err)
			}
		}
		if a.Register, err = regFamily(loc[i+2 : len(loc)-1]); err != nil {
			return Arg{}, err
		}
	default:
		return Arg{}, errors.New("unknown location")
	}
	return a, nil
}

// regFamily maps any x86-64 register name (rax, eax, ax, al, r12d, ...) to
// its 64-bit family.
func regFamily(r string) (string, error) {
	legacy := map[string]string{
		"rax": "ax", "eax": "ax", "ax": "ax", "al": "ax", "ah": "ax",
		"rbx": "bx", "ebx": "bx", "bx": "bx", "bl": "bx", "bh": "bx",
		"rcx": "cx", "ecx": "cx", "cx": "cx", "cl": "cx", "ch": "cx",
		"rdx": "dx", "edx": "dx", "dx": "dx", "dl": "dx", "dh": "dx",
		"rsi": "si", "esi": "si", "si": "si", "sil": "si",
		"rdi": "di", "edi": "di", "di": "di", "dil": "di",
		"rbp": "bp", "ebp": "bp", "bp": "bp", "bpl": "bp",
		"rsp": "sp", "esp": "sp", "sp": "sp", "spl": "sp",
		"rip": "ip",
	}
	if f, ok := legacy[r]; ok {
		return f, nil
	}
	if strings.HasPrefix(r, "r") {
		num := strings.TrimRight(r[1:], "dwb")
		if n, err := strconv.Atoi(num); err == nil && n >= 8 && n <= 15 {
			return "r" + num, nil
		}
	}
	return "", fmt.Errorf("unknown register %q", r)
}
