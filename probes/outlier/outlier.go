package outlier

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/probes/flight"
)

// DefaultRate is the kernel-side rate limit when a probe's config leaves it
// 0: outliers per second per CPU. Outliers are meant to be rare; a flood of
// them says the same thing as the first few hundred.
const DefaultRate = 200

// MaxRate bounds the rate and the burst, which keeps the kernel's integer
// token arithmetic from overflowing.
const MaxRate = 1_000_000

// Off is the threshold a probe without a sink runs with: no event is that slow.
const Off = math.MaxUint64

// Names of the shared objects (nerve_outlier.h).
const (
	varRate   = "outlier_rate"
	varBurst  = "outlier_burst"
	mapDrops  = "outlier_drops"
	dropRate  = uint32(0) // OUTLIER_DROP_RATE_LIMITED
	dropLost  = uint32(1) // OUTLIER_DROP_LOST
	dropSlots = 2         // OUTLIER_DROP_MAX
)

// Limit is the kernel-side rate limit of one probe's outliers: a token
// bucket per CPU.
type Limit struct {
	Rate  int // outliers per second per CPU; 0 = DefaultRate
	Burst int // outliers at once per CPU; 0 = Rate
}

// withDefaults fills in zeros and checks the bounds; field names the
// config fields in errors.
func (l Limit) withDefaults() (Limit, error) {
	if l.Rate < 0 || l.Burst < 0 || l.Rate > MaxRate || l.Burst > MaxRate {
		return l, fmt.Errorf("outlier rate (%d) and burst (%d) must be between 0 and %d", l.Rate, l.Burst, MaxRate)
	}
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	return l, nil
}

// Threshold is one of a probe's thresholds: the BPF variable that holds it
// (nanoseconds, const volatile) and its value.
type Threshold struct {
	Var string
	D   time.Duration
}

// Check validates a probe's outlier settings, as Configure would: a
// probe calls it before anything else, so that a bad setting fails New
// even where the BPF side cannot load.
func Check(on bool, limit Limit, thresholds ...Threshold) error {
	if !on {
		return nil
	}
	for _, t := range thresholds {
		if t.D < 0 {
			return fmt.Errorf("outlier threshold %s must not be negative, got %v", t.Var, t.D)
		}
	}
	_, err := limit.withDefaults()
	return err
}

// Configure prepares spec for load. With on, it writes the thresholds and
// the limit into the object's read-only data; without, it sets every
// threshold to Off and shrinks the ring buffer named ringbuf to one page.
// A negative threshold is an error.
func Configure(spec *ebpf.CollectionSpec, ringbuf string, on bool, limit Limit, thresholds ...Threshold) error {
	m := spec.Maps[ringbuf]
	if m == nil || m.Type != ebpf.RingBuf {
		return fmt.Errorf("object has no ring buffer %s", ringbuf)
	}
	if d := spec.Maps[mapDrops]; d == nil || d.MaxEntries != dropSlots {
		return fmt.Errorf("object has no %s map of %d counters: regenerate with make generate", mapDrops, dropSlots)
	}
	if err := Check(on, limit, thresholds...); err != nil {
		return err
	}
	for _, t := range thresholds {
		v := uint64(Off)
		if on {
			v = uint64(t.D)
		}
		if err := set(spec, t.Var, v); err != nil {
			return err
		}
	}
	if !on {
		m.MaxEntries = uint32(os.Getpagesize())
		return nil
	}
	l, err := limit.withDefaults()
	if err != nil {
		return err
	}
	if err := set(spec, varRate, uint64(l.Rate)); err != nil {
		return err
	}
	return set(spec, varBurst, uint64(l.Burst))
}

func set(spec *ebpf.CollectionSpec, name string, v uint64) error {
	s := spec.Variables[name]
	if s == nil {
		return fmt.Errorf("object has no variable %s", name)
	}
	if err := s.Set(v); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	return nil
}

// ReadDrops sums the per-CPU outlier_drops counters of a loaded probe.
func ReadDrops(m *ebpf.Map) (flight.Drops, error) {
	var d flight.Drops
	if m == nil {
		return d, nil
	}
	for _, c := range []struct {
		key uint32
		to  *uint64
	}{{dropRate, &d.RateLimited}, {dropLost, &d.Lost}} {
		var perCPU []uint64
		if err := m.Lookup(c.key, &perCPU); err != nil {
			return flight.Drops{}, fmt.Errorf("read %s: %w", mapDrops, err)
		}
		for _, n := range perCPU {
			*c.to += n
		}
	}
	return d, nil
}

// Clock turns the kernel's CLOCK_MONOTONIC readings (bpf_ktime_get_ns) into
// wall-clock times, by one offset measured when it is made. A wall clock
// stepped later shifts the times by as much; outliers are evidence read
// within minutes, and a step is rare.
type Clock struct {
	offset int64 // wall ns - monotonic ns
}

// NewClock measures the offset between the wall clock and CLOCK_MONOTONIC.
func NewClock() Clock {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return Clock{offset: time.Now().UnixNano() - ts.Nano()}
}

// Wall is the wall-clock time of a CLOCK_MONOTONIC reading in ns.
func (c Clock) Wall(mono uint64) time.Time { return time.Unix(0, c.offset+int64(mono)) }

// Decode reads one ring-buffer record into v, a bpf2go-generated struct,
// in the machine's byte order. A record shorter than v is an error.
func Decode(raw []byte, v any) error {
	if n := binary.Size(v); n < 0 || len(raw) < n {
		return fmt.Errorf("outlier record of %d bytes, want %d: regenerate with make generate", len(raw), n)
	}
	return binary.Read(bytes.NewReader(raw), binary.NativeEndian, v)
}

// Reader reads one probe's outlier ring buffer.
type Reader struct {
	rd   *ringbuf.Reader
	done chan struct{}
}

// Start reads the ring buffer m in a goroutine of its own and passes each
// record to handle, in the order the kernel submitted them; handle must not
// keep the slice. The goroutine ends when Close closes the reader: records
// still unread then are dropped (they were not outliers anyone asked for
// any more).
func Start(logger *slog.Logger, m *ebpf.Map, handle func(raw []byte)) (*Reader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("outlier ring buffer: %w", err)
	}
	r := &Reader{rd: rd, done: make(chan struct{})}
	go r.loop(logger, handle)
	return r, nil
}

func (r *Reader) loop(logger *slog.Logger, handle func([]byte)) {
	defer close(r.done)
	var rec ringbuf.Record
	for {
		if err := r.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			logger.Warn("read outliers", "err", err)
			time.Sleep(100 * time.Millisecond) // never spin on a broken reader
			continue
		}
		handle(rec.RawSample)
	}
}

// Close stops the reader and waits until its goroutine has ended, so that
// handle is never called after Close returns. A nil Reader is closed.
func (r *Reader) Close() error {
	if r == nil {
		return nil
	}
	err := r.rd.Close()
	<-r.done
	return err
}

// CString is a NUL-terminated C string, such as a task's comm, as bpf2go
// declares it (char becomes int8).
func CString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
