package hsperf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors. A *FormatError from Parse wraps exactly one of the first
// three. The derived figures (Safepoints, GCTime, ...) wrap ErrNoCounter when
// a counter is missing or of the wrong kind, and ErrCorrupt when its value
// is impossible.
var (
	// ErrCorrupt means the buffer is not a well-formed hsperfdata file.
	ErrCorrupt = errors.New("malformed hsperfdata")
	// ErrVersion means the buffer is hsperfdata of a major version this
	// package does not read.
	ErrVersion = errors.New("unsupported hsperfdata version")
	// ErrIncomplete means the JVM has not finished writing the file: it is
	// still starting, or is adding a counter at this moment. Reading again
	// shortly usually succeeds.
	ErrIncomplete = errors.New("hsperfdata not fully written yet")
	// ErrNoCounter means a counter that a derived figure needs is absent or
	// not of the expected type or units.
	ErrNoCounter = errors.New("counter not present")
)

// FormatError says what is wrong with a buffer given to Parse and where.
type FormatError struct {
	Offset int    // byte offset in the buffer where the problem was found
	Reason string // what is wrong, naming the field
	Err    error  // ErrCorrupt, ErrVersion or ErrIncomplete
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("hsperf: offset %d: %s: %v", e.Offset, e.Reason, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(kind error, off int, format string, args ...any) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...), Err: kind}
}

// Units is the unit a counter is measured in (PerfData::Units).
type Units uint8

// The units HotSpot uses. Ticks are counts of the high-resolution timer,
// whose rate is the counter sun.os.hrt.frequency.
const (
	UnitsNone   Units = 1
	UnitsBytes  Units = 2
	UnitsTicks  Units = 3
	UnitsEvents Units = 4
	UnitsString Units = 5
	UnitsHertz  Units = 6
)

func (u Units) String() string {
	switch u {
	case UnitsNone:
		return "none"
	case UnitsBytes:
		return "bytes"
	case UnitsTicks:
		return "ticks"
	case UnitsEvents:
		return "events"
	case UnitsString:
		return "string"
	case UnitsHertz:
		return "hertz"
	}
	return fmt.Sprintf("units(%d)", uint8(u))
}

// Variability says how a counter's value may change (PerfData::Variability).
type Variability uint8

// The variabilities HotSpot uses.
const (
	Constant  Variability = 1 // set once at creation
	Monotonic Variability = 2 // only grows
	Variable  Variability = 3 // goes up and down
)

func (v Variability) String() string {
	switch v {
	case Constant:
		return "constant"
	case Monotonic:
		return "monotonic"
	case Variable:
		return "variable"
	}
	return fmt.Sprintf("variability(%d)", uint8(v))
}

// Entry is one counter. Long is set for scalar longs (type 'J'); String and
// IsString for byte vectors whose units are UnitsString. Other kinds of
// entry (HotSpot writes none today) keep their name, type and units only.
type Entry struct {
	Name        string
	Type        byte // Java basic type character: 'J' long, 'B' byte, ...
	Units       Units
	Variability Variability
	Long        int64
	String      string
	IsString    bool
}

// Snapshot is the content of one hsperfdata file at the moment it was read.
type Snapshot struct {
	// ModTime is the JVM's high-resolution clock, in ticks, when a counter
	// was last added to the file. It does not move when values change.
	ModTime int64
	// Overflow is how many bytes of counters did not fit in the file
	// (-XX:PerfDataMemorySize) and live only in the JVM's heap. When it is
	// not 0, counters are missing from Entries.
	Overflow int
	Entries  map[string]Entry
}

// Layout of format version 2 (perfMemory.hpp, perfData.hpp). All fields are
// in the byte order the prologue names, except the magic, which is always
// the bytes CA FE C0 C0.
const (
	magic = "\xca\xfe\xc0\xc0"

	offByteOrder    = 4  // u8: 0 big endian, 1 little endian
	offMajor        = 5  // u8
	offMinor        = 6  // u8
	offAccessible   = 7  // u8: set once the JVM has finished initialising
	offUsed         = 8  // i32: bytes of the file in use
	offOverflow     = 12 // i32: bytes that did not fit and live in the JVM's heap instead
	offModTimeStamp = 16 // i64
	offEntryOffset  = 24 // i32: where the first entry starts
	offNumEntries   = 28 // i32
	prologueSize    = 32

	// PerfDataEntry header.
	eoEntryLength   = 0  // i32: bytes from this entry to the next
	eoNameOffset    = 4  // i32: from the entry start
	eoVectorLength  = 8  // i32: 0 for a scalar
	eoDataType      = 12 // u8: Java basic type character
	eoFlags         = 13 // u8
	eoDataUnits     = 14 // u8
	eoVariability   = 15 // u8
	eoDataOffset    = 16 // i32: from the entry start
	entryHeaderSize = 20

	supportedMajor = 2

	// maxEntries caps num_entries. A JDK 17 JVM writes about 200 entries
	// into its default 32 KiB; the cap only stops a corrupt count from
	// making Parse allocate for millions.
	maxEntries = 1 << 16
)

// typeSize is the size in bytes of one element of each Java basic type.
var typeSize = map[byte]int{
	'Z': 1, 'B': 1, 'C': 2, 'S': 2, 'I': 4, 'F': 4, 'J': 8, 'D': 8,
}

// Parse decodes an hsperfdata file. It never panics; every error is a
// *FormatError. b is not retained.
func Parse(b []byte) (*Snapshot, error) {
	if len(b) < prologueSize {
		return nil, formatErr(ErrCorrupt, 0, "header needs %d bytes, buffer has %d", prologueSize, len(b))
	}
	if string(b[:4]) != magic {
		return nil, formatErr(ErrCorrupt, 0, "magic is % x, want % x", b[:4], []byte(magic))
	}
	var order binary.ByteOrder
	switch b[offByteOrder] {
	case 0:
		order = binary.BigEndian
	case 1:
		order = binary.LittleEndian
	default:
		return nil, formatErr(ErrCorrupt, offByteOrder, "byte order %d, want 0 (big) or 1 (little)", b[offByteOrder])
	}
	if major := b[offMajor]; major != supportedMajor {
		return nil, formatErr(ErrVersion, offMajor, "version %d.%d, want major version %d", major, b[offMinor], supportedMajor)
	}
	if b[offAccessible] == 0 {
		return nil, formatErr(ErrIncomplete, offAccessible, "accessible flag is 0 (JVM still initialising)")
	}
	i32 := func(p []byte) int { return int(int32(order.Uint32(p))) }

	// Entries live in the first used bytes; what follows is zeroes or, in a
	// truncated copy, missing.
	used := i32(b[offUsed:])
	if used < prologueSize || used > len(b) {
		return nil, formatErr(ErrCorrupt, offUsed, "used %d out of range [%d, %d]", used, prologueSize, len(b))
	}
	entryOffset := i32(b[offEntryOffset:])
	if entryOffset < prologueSize || entryOffset > used {
		return nil, formatErr(ErrCorrupt, offEntryOffset, "entry offset %d out of range [%d, %d]", entryOffset, prologueSize, used)
	}
	n := i32(b[offNumEntries:])
	if n < 0 || n > maxEntries {
		return nil, formatErr(ErrCorrupt, offNumEntries, "num_entries %d out of range [0, %d]", n, maxEntries)
	}
	if room := (used - entryOffset) / entryHeaderSize; n > room {
		return nil, formatErr(ErrCorrupt, offNumEntries, "num_entries %d cannot fit in the %d bytes from offset %d to used %d", n, used-entryOffset, entryOffset, used)
	}

	s := &Snapshot{
		ModTime:  int64(order.Uint64(b[offModTimeStamp:])),
		Overflow: i32(b[offOverflow:]),
		Entries:  make(map[string]Entry, n),
	}
	off := entryOffset
	for i := range n {
		e, length, err := parseEntry(b[:used], off, i, order)
		if err != nil {
			return nil, err
		}
		// Names are unique in a well-formed file. Keep the first of a
		// duplicate rather than lose the whole file to it.
		if _, dup := s.Entries[e.Name]; !dup {
			s.Entries[e.Name] = e
		}
		off += length
	}
	return s, nil
}

// parseEntry decodes the entry at b[off:] and returns it with its length.
// b ends at the prologue's used mark.
func parseEntry(b []byte, off, index int, order binary.ByteOrder) (Entry, int, error) {
	if len(b)-off < entryHeaderSize {
		return Entry{}, 0, formatErr(ErrCorrupt, off, "entry %d header needs %d bytes, %d left before used mark %d", index, entryHeaderSize, len(b)-off, len(b))
	}
	h := b[off : off+entryHeaderSize]
	i32 := func(p []byte) int { return int(int32(order.Uint32(p))) }

	length := i32(h[eoEntryLength:])
	switch {
	case length == 0:
		// The JVM counts an entry before it writes it.
		return Entry{}, 0, formatErr(ErrIncomplete, off, "entry %d has entry_length 0", index)
	case length < entryHeaderSize:
		return Entry{}, 0, formatErr(ErrCorrupt, off, "entry %d has entry_length %d, less than its %d-byte header", index, length, entryHeaderSize)
	case length > len(b)-off:
		return Entry{}, 0, formatErr(ErrCorrupt, off, "entry %d has entry_length %d, running past used mark %d", index, length, len(b))
	}
	p := b[off : off+length]

	nameOff := i32(h[eoNameOffset:])
	if nameOff < entryHeaderSize || nameOff >= length {
		return Entry{}, 0, formatErr(ErrCorrupt, off+eoNameOffset, "entry %d has name_offset %d out of range [%d, %d)", index, nameOff, entryHeaderSize, length)
	}
	nul := bytes.IndexByte(p[nameOff:], 0)
	if nul < 0 {
		return Entry{}, 0, formatErr(ErrCorrupt, off+nameOff, "entry %d name has no NUL before the entry ends at offset %d", index, off+length)
	}
	if nul == 0 {
		return Entry{}, 0, formatErr(ErrCorrupt, off+nameOff, "entry %d name is empty", index)
	}
	name := string(p[nameOff : nameOff+nul])

	typ := h[eoDataType]
	elem, ok := typeSize[typ]
	if !ok {
		return Entry{}, 0, formatErr(ErrCorrupt, off+eoDataType, "entry %q has unknown data type %#02x", name, typ)
	}
	vlen := i32(h[eoVectorLength:])
	if vlen < 0 || vlen > length {
		return Entry{}, 0, formatErr(ErrCorrupt, off+eoVectorLength, "entry %q has vector_length %d out of range [0, %d]", name, vlen, length)
	}
	size := elem // a scalar
	if vlen > 0 {
		size = elem * vlen
	}
	dataOff := i32(h[eoDataOffset:])
	if dataOff < entryHeaderSize || dataOff > length || size > length-dataOff {
		return Entry{}, 0, formatErr(ErrCorrupt, off+eoDataOffset, "entry %q data (offset %d, %d bytes) runs past the entry's end at %d", name, dataOff, size, length)
	}
	data := p[dataOff : dataOff+size]

	e := Entry{
		Name:        name,
		Type:        typ,
		Units:       Units(h[eoDataUnits]),
		Variability: Variability(h[eoVariability]),
	}
	switch {
	case typ == 'J' && vlen == 0:
		e.Long = int64(order.Uint64(data))
	case typ == 'B' && vlen > 0 && e.Units == UnitsString:
		if i := bytes.IndexByte(data, 0); i >= 0 {
			data = data[:i]
		}
		e.String = string(data)
		e.IsString = true
	}
	return e, length, nil
}
