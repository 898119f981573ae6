package hsperf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/privtest"
)

// update re-captures testdata/jdk17.hsperfdata from the JVM TestRealJVM
// starts. The golden JSON is then updated by hand from
//
//	jstat -J-Djstat.showUnsupported=true -snap file://$PWD/testdata/jdk17.hsperfdata
//
// so that its values come from the JDK's own reader, not from this package.
var update = flag.Bool("update", false, "copy the real JVM's hsperfdata file to testdata/")

const (
	realFile   = "testdata/jdk17.hsperfdata"
	goldenFile = "testdata/jdk17.golden.json"
)

// gcCalls is how many times the test program calls System.gc().
const gcCalls = 3

const javaProg = `public class Prog {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < %d; i++) {
            System.gc();
        }
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(2000);
    }
}
`

// TestRealJVM runs a JVM that collects garbage and reads its live file.
func TestRealJVM(t *testing.T) {
	privtest.Tools(t, "java", "javac")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Prog.java"), fmt.Appendf(nil, javaProg, gcCalls), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "javac", "-d", dir, filepath.Join(dir, "Prog.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	// A small heap and only the C1 compiler keep the run light on a shared
	// CI machine.
	cmd := exec.CommandContext(ctx, "java", "-XX:+UsePerfData", "-Xmx64m", "-XX:TieredStopAtLevel=1", "-cp", dir, "Prog")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cmd.Wait(); err != nil {
			t.Errorf("java: %v", err)
		}
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("java did not print ready: %q, %v", sc.Text(), sc.Err())
	}
	pid := cmd.Process.Pid
	path := HsperfPath("/", u.Username, pid)

	s, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	freq, err := s.Frequency()
	if err != nil || freq <= 0 {
		t.Errorf("Frequency() = %d, %v; want > 0", freq, err)
	}
	count, total, syncSec, err := s.Safepoints()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("safepoints: %d, %.6fs total, %.6fs to reach", count, total, syncSec)
	if count <= 0 || total <= 0 || syncSec < 0 || syncSec > total {
		t.Errorf("Safepoints() = %d, %v s, sync %v s; want count > 0, 0 <= sync <= total, total > 0", count, total, syncSec)
	}
	cs, err := s.Collectors()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collectors: %+v", cs)
	n, sec, err := s.GCTime()
	if err != nil {
		t.Fatal(err)
	}
	if n < gcCalls || sec <= 0 {
		t.Errorf("GCTime() = %d collections, %v s; want >= %d collections (one per System.gc()), > 0 s", n, sec, gcCalls)
	}
	// Every System.gc() pause is a safepoint.
	if count < gcCalls {
		t.Errorf("safepoints = %d, want >= %d System.gc() calls", count, gcCalls)
	}
	if got := s.Entries["sun.rt.javaCommand"].String; got != "Prog" {
		t.Errorf("sun.rt.javaCommand = %q, want %q", got, "Prog")
	}

	// The same file through /proc/<pid>/root, as nerve reads a JVM in a
	// container, confined to that root.
	s2, err := ReadInRoot(fmt.Sprintf("/proc/%d/root", pid), u.Username, pid)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s2.Entries[NameSafepoints].Long, count; got < want {
		t.Errorf("ReadInRoot: safepoints = %d, want >= %d", got, want)
	}

	if *update {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(realFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now update %s from jstat -snap", realFile, goldenFile)
	}
}

type golden struct {
	Source     string            `json:"source"`
	Entries    int               `json:"entries"`
	Longs      map[string]int64  `json:"longs"`
	Strings    map[string]string `json:"strings"`
	Units      map[string]string `json:"units"`
	Safepoints struct {
		Count        int64   `json:"count"`
		TotalSeconds float64 `json:"total_seconds"`
		SyncSeconds  float64 `json:"sync_seconds"`
	} `json:"safepoints"`
	GC struct {
		Collections int64   `json:"collections"`
		Seconds     float64 `json:"seconds"`
	} `json:"gc"`
}

func readReal(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden parses the committed file of a real JDK 17 and compares it with
// values jstat read from the same file.
func TestGolden(t *testing.T) {
	s, err := Parse(readReal(t))
	if err != nil {
		t.Fatal(err)
	}
	gb, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(gb, &g); err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Entries), g.Entries; got != want {
		t.Errorf("entries = %d, want %d", got, want)
	}
	for name, want := range g.Longs {
		e, ok := s.Entries[name]
		if !ok || e.Type != 'J' || e.Long != want {
			t.Errorf("%s = %+v, want long %d", name, e, want)
		}
	}
	for name, want := range g.Strings {
		if e := s.Entries[name]; !e.IsString || e.String != want {
			t.Errorf("%s = %+v, want string %q", name, e, want)
		}
	}
	for name, want := range g.Units {
		if got := s.Entries[name].Units.String(); got != want {
			t.Errorf("%s units = %s, want %s", name, got, want)
		}
	}
	count, total, syncSec, err := s.Safepoints()
	if err != nil {
		t.Fatal(err)
	}
	if count != g.Safepoints.Count || !near(total, g.Safepoints.TotalSeconds) || !near(syncSec, g.Safepoints.SyncSeconds) {
		t.Errorf("Safepoints() = %d, %v, %v; want %d, %v, %v", count, total, syncSec, g.Safepoints.Count, g.Safepoints.TotalSeconds, g.Safepoints.SyncSeconds)
	}
	n, sec, err := s.GCTime()
	if err != nil {
		t.Fatal(err)
	}
	if n != g.GC.Collections || !near(sec, g.GC.Seconds) {
		t.Errorf("GCTime() = %d, %v; want %d, %v", n, sec, g.GC.Collections, g.GC.Seconds)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// TestMatchesJstat checks every counter against the JDK's own reader of the
// committed file.
func TestMatchesJstat(t *testing.T) {
	privtest.Tools(t, "jstat")
	abs, err := filepath.Abs(realFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "jstat", "-J-Djstat.showUnsupported=true", "-snap", "file://"+abs).Output()
	if err != nil {
		t.Fatalf("jstat: %v", err)
	}
	s, err := Parse(readReal(t))
	if err != nil {
		t.Fatal(err)
	}
	// jstat shows the prologue as sun.perfdata.* pseudo-counters.
	b := readReal(t)
	le := binary.LittleEndian
	prologue := map[string]int64{
		"sun.perfdata.majorVersion": int64(b[offMajor]),
		"sun.perfdata.minorVersion": int64(b[offMinor]),
		"sun.perfdata.size":         int64(len(b)),
		"sun.perfdata.used":         int64(le.Uint32(b[offUsed:])),
		"sun.perfdata.overflow":     int64(s.Overflow),
		"sun.perfdata.timestamp":    s.ModTime,
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		name, val, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("jstat line %q has no '='", line)
		}
		if want, ok := prologue[name]; ok {
			if val != strconv.FormatInt(want, 10) {
				t.Errorf("%s: jstat says %s, header has %d", name, val, want)
			}
			delete(prologue, name)
			continue
		}
		seen[name] = true
		e, ok := s.Entries[name]
		if !ok {
			t.Errorf("%s: in jstat (%s), not parsed", name, val)
			continue
		}
		if str, isStr := strings.CutPrefix(val, `"`); isStr {
			str = strings.TrimSuffix(str, `"`)
			if !e.IsString || e.String != str {
				t.Errorf("%s = %+v, jstat says string %q", name, e, str)
			}
			continue
		}
		want, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			t.Errorf("%s: jstat value %q: %v", name, val, err)
			continue
		}
		if e.Type != 'J' || e.Long != want {
			t.Errorf("%s = %+v, jstat says %d", name, e, want)
		}
	}
	for name := range s.Entries {
		if !seen[name] {
			t.Errorf("%s: parsed, not in jstat", name)
		}
	}
	for name := range prologue {
		t.Errorf("%s: not in jstat", name)
	}
}

// spec is one entry for build.
type spec struct {
	name        string
	typ         byte // 'J' or 'B'
	units       Units
	variability Variability
	long        int64  // for 'J'
	str         string // for 'B'
	vlen        int    // for 'B'; 0 means len(str)+1
}

// build lays out an hsperfdata file the way HotSpot does (names and data
// 8-byte aligned) and returns it with the offset of every entry.
func build(order binary.ByteOrder, entries ...spec) ([]byte, []int) {
	align := func(n int) int { return (n + 7) &^ 7 }
	b := make([]byte, prologueSize)
	copy(b, magic)
	if order == binary.LittleEndian {
		b[offByteOrder] = 1
	}
	b[offMajor], b[offAccessible] = 2, 1
	order.PutUint64(b[offModTimeStamp:], 12345)
	order.PutUint32(b[offEntryOffset:], prologueSize)
	order.PutUint32(b[offNumEntries:], uint32(len(entries)))
	var offs []int
	for _, sp := range entries {
		var data []byte
		vlen := 0
		switch sp.typ {
		case 'J':
			data = make([]byte, 8)
			order.PutUint64(data, uint64(sp.long))
		case 'B':
			vlen = sp.vlen
			if vlen == 0 {
				vlen = len(sp.str) + 1
			}
			data = make([]byte, vlen)
			copy(data, sp.str)
		}
		dataOff := align(entryHeaderSize + len(sp.name) + 1)
		e := make([]byte, align(dataOff+len(data)))
		order.PutUint32(e[eoEntryLength:], uint32(len(e)))
		order.PutUint32(e[eoNameOffset:], entryHeaderSize)
		order.PutUint32(e[eoVectorLength:], uint32(vlen))
		e[eoDataType], e[eoDataUnits], e[eoVariability] = sp.typ, byte(sp.units), byte(sp.variability)
		order.PutUint32(e[eoDataOffset:], uint32(dataOff))
		copy(e[entryHeaderSize:], sp.name)
		copy(e[dataOff:], data)
		offs = append(offs, len(b))
		b = append(b, e...)
	}
	order.PutUint32(b[offUsed:], uint32(len(b)))
	return append(b, make([]byte, 64)...), offs // the unused tail the JVM leaves zeroed
}

var specs = []spec{
	{name: NameFrequency, typ: 'J', units: UnitsHertz, variability: Constant, long: 1_000_000_000},
	{name: NameSafepoints, typ: 'J', units: UnitsEvents, variability: Monotonic, long: 42},
	{name: NameSafepointTime, typ: 'J', units: UnitsTicks, variability: Monotonic, long: 1_500_000_000},
	{name: NameSafepointSyncTime, typ: 'J', units: UnitsTicks, variability: Monotonic, long: 250_000_000},
	{name: "sun.gc.collector.0.name", typ: 'B', units: UnitsString, variability: Constant, str: "G1 young collection pauses", vlen: 128},
	{name: "sun.gc.collector.0.invocations", typ: 'J', units: UnitsEvents, variability: Monotonic, long: 40},
	{name: "sun.gc.collector.0.time", typ: 'J', units: UnitsTicks, variability: Monotonic, long: 1_000_000_000},
	{name: "sun.gc.collector.1.invocations", typ: 'J', units: UnitsEvents, variability: Monotonic, long: 2},
	{name: "sun.gc.collector.1.time", typ: 'J', units: UnitsTicks, variability: Monotonic, long: 500_000_000},
	{name: "sun.gc.collector.10.invocations", typ: 'J', units: UnitsEvents, variability: Monotonic, long: 1},
	{name: "sun.gc.collector.10.time", typ: 'J', units: UnitsTicks, variability: Monotonic, long: 250_000_000},
	{name: "sun.gc.collector.x.invocations", typ: 'J', units: UnitsEvents, variability: Monotonic, long: 1000}, // not a collector
}

func TestByteOrders(t *testing.T) {
	var snaps []*Snapshot
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		b, _ := build(order, specs...)
		s, err := Parse(b)
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		snaps = append(snaps, s)

		count, total, syncSec, err := s.Safepoints()
		if err != nil || count != 42 || total != 1.5 || syncSec != 0.25 {
			t.Errorf("%v: Safepoints() = %d, %v, %v, %v; want 42, 1.5, 0.25, nil", order, count, total, syncSec, err)
		}
		n, sec, err := s.GCTime()
		if err != nil || n != 43 || sec != 1.75 {
			t.Errorf("%v: GCTime() = %d, %v, %v; want 43, 1.75, nil", order, n, sec, err)
		}
		cs, err := s.Collectors()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cs[0].Name, "G1 young collection pauses"; got != want {
			t.Errorf("%v: collector 0 name = %q, want %q", order, got, want)
		}
		if got, want := len(cs), 3; got != want || cs[2].Index != 10 {
			t.Errorf("%v: collectors = %+v, want indexes 0, 1, 10", order, cs)
		}
		if s.ModTime != 12345 {
			t.Errorf("%v: ModTime = %d, want 12345", order, s.ModTime)
		}
	}
	if !reflect.DeepEqual(snaps[0], snaps[1]) {
		t.Errorf("little and big endian differ:\n%+v\n%+v", snaps[0], snaps[1])
	}
}

// TestRealFileBigEndian re-encodes the real file's counters big endian: the
// parse must not depend on the machine's byte order.
func TestRealFileBigEndian(t *testing.T) {
	le, err := Parse(readReal(t))
	if err != nil {
		t.Fatal(err)
	}
	var sp []spec
	for _, e := range le.Entries {
		if e.Type != 'J' && !e.IsString {
			t.Fatalf("%s: type %q: the real file has entries build cannot encode", e.Name, e.Type)
		}
		sp = append(sp, spec{name: e.Name, typ: e.Type, units: e.Units, variability: e.Variability, long: e.Long, str: e.String})
	}
	sort.Slice(sp, func(i, j int) bool { return sp[i].name < sp[j].name })
	b, _ := build(binary.BigEndian, sp...)
	be, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(le.Entries, be.Entries) {
		t.Error("big endian re-encoding parses differently")
	}
}

type corruptCase struct {
	name    string
	mutate  func(b []byte, offs []int, order binary.ByteOrder) []byte
	kind    error
	offset  func(offs []int) int
	message string
}

func at(n int) func([]int) int { return func([]int) int { return n } }

func entryAt(i, field int) func([]int) int {
	return func(offs []int) int { return offs[i] + field }
}

func put(off, v int) func([]byte, []int, binary.ByteOrder) []byte {
	return func(b []byte, _ []int, order binary.ByteOrder) []byte {
		order.PutUint32(b[off:], uint32(int32(v)))
		return b
	}
}

func putEntry(i, field, v int) func([]byte, []int, binary.ByteOrder) []byte {
	return func(b []byte, offs []int, order binary.ByteOrder) []byte {
		order.PutUint32(b[offs[i]+field:], uint32(int32(v)))
		return b
	}
}

// corruptBase has a long then a string entry.
var corruptBase = []spec{
	{name: "a.long", typ: 'J', units: UnitsTicks, variability: Monotonic, long: 7},
	{name: "b.str", typ: 'B', units: UnitsString, variability: Constant, str: "hi"},
}

var corruptCases = []corruptCase{
	{"empty", func(b []byte, _ []int, _ binary.ByteOrder) []byte { return nil },
		ErrCorrupt, at(0), "header needs 32 bytes, buffer has 0"},
	{"truncated header", func(b []byte, _ []int, _ binary.ByteOrder) []byte { return b[:31] },
		ErrCorrupt, at(0), "header needs 32 bytes, buffer has 31"},
	{"bad magic", func(b []byte, _ []int, _ binary.ByteOrder) []byte { b[3] = 0xc1; return b },
		ErrCorrupt, at(0), "magic is ca fe c0 c1"},
	{"bad byte order", func(b []byte, _ []int, _ binary.ByteOrder) []byte { b[offByteOrder] = 2; return b },
		ErrCorrupt, at(offByteOrder), "byte order 2"},
	{"major version 1", func(b []byte, _ []int, _ binary.ByteOrder) []byte { b[offMajor] = 1; return b },
		ErrVersion, at(offMajor), "version 1.0, want major version 2"},
	{"not yet accessible", func(b []byte, _ []int, _ binary.ByteOrder) []byte { b[offAccessible] = 0; return b },
		ErrIncomplete, at(offAccessible), "accessible flag is 0"},
	{"used past end", func(b []byte, _ []int, o binary.ByteOrder) []byte { return put(offUsed, len(b)+1)(b, nil, o) },
		ErrCorrupt, at(offUsed), "used"},
	{"truncated entries", func(b []byte, offs []int, _ binary.ByteOrder) []byte { return b[:offs[1]+10] },
		ErrCorrupt, at(offUsed), "out of range"},
	{"entry offset out of range", put(offEntryOffset, 1<<20),
		ErrCorrupt, at(offEntryOffset), "entry offset 1048576 out of range"},
	{"entry offset inside header", put(offEntryOffset, 8),
		ErrCorrupt, at(offEntryOffset), "entry offset 8 out of range"},
	{"negative num_entries", put(offNumEntries, -1),
		ErrCorrupt, at(offNumEntries), "num_entries -1"},
	{"huge num_entries", put(offNumEntries, 1<<30),
		ErrCorrupt, at(offNumEntries), "num_entries 1073741824"},
	{"num_entries beyond used", put(offNumEntries, 5),
		ErrCorrupt, at(offNumEntries), "cannot fit"},
	{"zero entry length", putEntry(0, eoEntryLength, 0),
		ErrIncomplete, entryAt(0, 0), "entry 0 has entry_length 0"},
	{"negative entry length", putEntry(1, eoEntryLength, -8),
		ErrCorrupt, entryAt(1, 0), "entry 1 has entry_length -8"},
	{"entry length past end", putEntry(1, eoEntryLength, 4096),
		ErrCorrupt, entryAt(1, 0), "entry 1 has entry_length 4096, running past"},
	{"name offset out of range", putEntry(0, eoNameOffset, 1000),
		ErrCorrupt, entryAt(0, eoNameOffset), "name_offset 1000"},
	{"name offset inside header", putEntry(0, eoNameOffset, 4),
		ErrCorrupt, entryAt(0, eoNameOffset), "name_offset 4"},
	{"name without NUL", func(b []byte, offs []int, _ binary.ByteOrder) []byte {
		copy(b[offs[0]+entryHeaderSize:offs[1]], bytes.Repeat([]byte("x"), offs[1]-offs[0]))
		return b
	}, ErrCorrupt, entryAt(0, entryHeaderSize), "entry 0 name has no NUL"},
	{"empty name", func(b []byte, offs []int, _ binary.ByteOrder) []byte { b[offs[0]+entryHeaderSize] = 0; return b },
		ErrCorrupt, entryAt(0, entryHeaderSize), "name is empty"},
	{"unknown data type", func(b []byte, offs []int, _ binary.ByteOrder) []byte { b[offs[0]+eoDataType] = 'Q'; return b },
		ErrCorrupt, entryAt(0, eoDataType), `"a.long" has unknown data type 0x51`},
	{"negative vector length", putEntry(1, eoVectorLength, -1),
		ErrCorrupt, entryAt(1, eoVectorLength), "vector_length -1"},
	{"data past the end", putEntry(1, eoVectorLength, 9),
		ErrCorrupt, entryAt(1, eoDataOffset), `"b.str" data (offset 32, 9 bytes) runs past the entry's end at 40`},
	{"data offset past the end", putEntry(0, eoDataOffset, 1000),
		ErrCorrupt, entryAt(0, eoDataOffset), "data (offset 1000"},
	{"data offset inside header", putEntry(0, eoDataOffset, 4),
		ErrCorrupt, entryAt(0, eoDataOffset), "data (offset 4"},
	{"long data past the end", putEntry(0, eoDataOffset, 36),
		ErrCorrupt, entryAt(0, eoDataOffset), "data (offset 36, 8 bytes) runs past the entry's end at 40"},
}

func TestCorrupt(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, tc := range corruptCases {
			t.Run(fmt.Sprintf("%v/%s", order, tc.name), func(t *testing.T) {
				b, offs := build(order, corruptBase...)
				s, err := Parse(tc.mutate(b, offs, order))
				if err == nil {
					t.Fatalf("Parse() = %+v, want error", s)
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("Parse() error %T %v, want *FormatError", err, err)
				}
				if !errors.Is(err, tc.kind) {
					t.Errorf("Parse() error %v, want %v", err, tc.kind)
				}
				if got, want := fe.Offset, tc.offset(offs); got != want {
					t.Errorf("offset = %d, want %d (%v)", got, want, err)
				}
				if !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d:", fe.Offset)) {
					t.Errorf("error %q, want it to contain %q and its offset", err, tc.message)
				}
			})
		}
	}
}

// TestTornEntry replays the JVM adding an entry while Parse reads: the new
// entry is counted in num_entries and used before its bytes are written, and
// they are written in some order. Every intermediate state must give an
// error or keep the entries that were already complete.
func TestTornEntry(t *testing.T) {
	full, offs := build(binary.LittleEndian, specs...)
	last := offs[len(offs)-1]
	end := int(binary.LittleEndian.Uint32(full[offUsed:]))
	want, err := Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v, want *FormatError", err, err)
			}
			return
		}
		for _, sp := range specs[:len(specs)-1] {
			if got := s.Entries[sp.name]; !reflect.DeepEqual(got, want.Entries[sp.name]) {
				t.Fatalf("%s = %+v, want %+v", sp.name, got, want.Entries[sp.name])
			}
		}
	}
	for k := last; k <= end; k++ {
		forward := bytes.Clone(full)
		clear(forward[k:end]) // bytes written front to back, up to k
		check(t, forward)
		backward := bytes.Clone(full)
		clear(backward[last:k]) // written back to front, down to k
		check(t, backward)
	}
	_, err = Parse(func() []byte { b := bytes.Clone(full); clear(b[last:end]); return b }())
	if !errors.Is(err, ErrIncomplete) {
		t.Errorf("reserved, unwritten entry: error %v, want %v", err, ErrIncomplete)
	}
}

func TestDerivedErrors(t *testing.T) {
	tests := []struct {
		name string
		drop string
		set  func(*spec)
		kind error
	}{
		{"no frequency", NameFrequency, nil, ErrNoCounter},
		{"zero frequency", NameFrequency, func(s *spec) { s.long = 0 }, ErrCorrupt},
		{"no safepoint time", NameSafepointTime, nil, ErrNoCounter},
		{"safepoint time not ticks", NameSafepointTime, func(s *spec) { s.units = UnitsBytes }, ErrNoCounter},
		{"negative safepoints", NameSafepoints, func(s *spec) { s.long = -1 }, ErrCorrupt},
		{"collector time missing", "sun.gc.collector.1.time", nil, ErrNoCounter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sp []spec
			for _, s := range specs {
				if s.name == tc.drop {
					if tc.set == nil {
						continue
					}
					tc.set(&s)
				}
				sp = append(sp, s)
			}
			b, _ := build(binary.LittleEndian, sp...)
			s, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, errS := s.Safepoints()
			_, _, errG := s.GCTime()
			if !errors.Is(errS, tc.kind) && !errors.Is(errG, tc.kind) {
				t.Errorf("Safepoints() error %v, GCTime() error %v; want %v", errS, errG, tc.kind)
			}
		})
	}
	s := &Snapshot{Entries: map[string]Entry{NameFrequency: {Name: NameFrequency, Type: 'J', Units: UnitsHertz, Long: 1}}}
	if _, _, err := s.GCTime(); !errors.Is(err, ErrNoCounter) {
		t.Errorf("GCTime() without collectors: %v, want %v", err, ErrNoCounter)
	}
}

func TestReadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	real, err := filepath.Abs(realFile)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(link); err == nil {
		t.Error("Read(symlink) succeeded, want error")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		privtest.Skip(t, "mkfifo: "+err.Error())
	}
	if _, err := Read(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Read(fifo) error %v, want not a regular file", err)
	}

	// A container's root with a symlink pointing out of it.
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "tmp", "hsperfdata_cass"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(root, "tmp", "hsperfdata_cass", "7")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInRoot(root, "cass", 7); err == nil {
		t.Error("ReadInRoot followed a symlink out of root")
	}
	b := readReal(t)
	if err := os.WriteFile(filepath.Join(root, "tmp", "hsperfdata_cass", "8"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInRoot(root, "cass", 8); err != nil {
		t.Errorf("ReadInRoot: %v", err)
	}
	if got, want := HsperfPath(root, "cass", 8), filepath.Join(root, "tmp/hsperfdata_cass/8"); got != want {
		t.Errorf("HsperfPath() = %q, want %q", got, want)
	}
}

// FuzzParse checks that no input makes Parse panic, hang, or return an error
// that is not a *FormatError. The real file is 32 KiB, and minimising an
// input that size takes the default 60 s each time, so run it with
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s -fuzzminimizetime 3s
func FuzzParse(f *testing.F) {
	real := readReal(f)
	f.Add(real)
	f.Add(real[:binary.LittleEndian.Uint32(real[offUsed:])])
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		b, offs := build(order, specs...)
		f.Add(b)
		for _, tc := range corruptCases {
			b, offs = build(order, corruptBase...)
			f.Add(tc.mutate(b, offs, order))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v, want *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("offset %d outside the %d-byte input: %v", fe.Offset, len(b), err)
			}
			return
		}
		for name, e := range s.Entries {
			if name == "" || name != e.Name {
				t.Fatalf("entry %q has name %q", name, e.Name)
			}
		}
		s.Safepoints()
		s.GCTime()
	})
}
