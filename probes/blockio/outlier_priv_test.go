package blockio

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/flight/flighttest"
)

// The reader child: the test binary run again, reading a device with direct
// I/O from one thread with a name of its own.
const (
	envReaderDevice = "NERVE_BLOCKIO_READER_DEVICE"
	envReaderCount  = "NERVE_BLOCKIO_READER_COUNT"
	readerComm      = "nerve-reader"
	readerBlock     = 4096
)

// readerReport is what the child says it did.
type readerReport struct {
	TID     int     `json:"tid"`
	Offsets []int64 `json:"offsets"`
}

func TestMain(m *testing.M) {
	if dev := os.Getenv(envReaderDevice); dev != "" {
		if err := reader(dev); err != nil {
			fmt.Fprintln(os.Stderr, "reader:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// reader does its reads, reports them, then waits for stdin to close, so
// that the parent reads its outliers while it still exists.
func reader(dev string) error {
	n, err := strconv.Atoi(os.Getenv(envReaderCount))
	if err != nil {
		return err
	}
	runtime.LockOSThread() // the name and the reads belong to this thread
	name, _ := unix.BytePtrFromString(readerComm)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
		return fmt.Errorf("name the thread: %w", err)
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, readerBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	r := readerReport{TID: unix.Gettid()}
	for i := 0; i < n; i++ {
		off := int64(i*7+3) * readerBlock // distinct, not sequential: no merging
		if _, err := unix.Pread(fd, buf, off); err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		r.Offsets = append(r.Offsets, off)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return err
	}
	bufio.NewReader(os.Stdin).ReadString('\n') // EOF when the parent is done
	return nil
}

// runReader runs the reader child on dev and returns its pid and report;
// the child exits when the test ends (or when release is called).
func runReader(t *testing.T, dev string, n int) (pid int, r readerReport, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envReaderDevice+"="+dev, envReaderCount+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release = func() {
		stdin.Close()
		cmd.Wait()
	}
	t.Cleanup(release)
	if err := json.NewDecoder(stdout).Decode(&r); err != nil {
		t.Fatalf("reader report: %v", err)
	}
	return cmd.Process.Pid, r, release
}

// Direct reads of a slow disk are outliers naming the reader, its thread,
// the device and the request; a fast disk's requests are none.
func TestBlockOutliers(t *testing.T) { inEveryMode(t, testBlockOutliers) }

func testBlockOutliers(t *testing.T, mode Mode) {
	sink := &flighttest.Sink{}
	p := startProbe(t, Config{Outliers: sink, OutlierService: 10 * time.Millisecond, OutlierQueue: 10 * time.Millisecond})
	if p.Mode() != mode {
		t.Fatalf("probe runs in mode %s, want %s", p.Mode(), mode)
	}

	const delay, reads = 30 * time.Millisecond, 20
	slow, err := faults.NewSlowDisk(scratch(t), 64<<20, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := faults.NewFastDisk(scratch(t), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()

	start := time.Now()
	pid, rep, _ := runReader(t, slow.Device(), reads)
	mine := func(e flight.Event) bool { return e.PID == pid }
	got := sink.Wait(reads, 5*time.Second, mine)
	offsets := map[uint64]bool{}
	for _, o := range rep.Offsets {
		offsets[uint64(o)/512] = true
	}
	if len(got) != reads {
		t.Errorf("%d outliers from the reader (pid %d), want %d (one per read)", len(got), pid, reads)
	}
	for i, e := range got {
		b := e.Block
		if i == 0 {
			t.Logf("first: %+v %+v", e, *b)
		}
		if e.Signal != flight.BlockIO || b == nil {
			t.Fatalf("outlier %d: signal %q, block %v", i, e.Signal, b)
		}
		if e.TID != rep.TID || e.Comm != readerComm {
			t.Errorf("outlier %d: tid %d comm %q, want %d %q", i, e.TID, e.Comm, rep.TID, readerComm)
		}
		if b.Device != slow.Name() || b.Op != "read" {
			t.Errorf("outlier %d: device %q op %q, want %q read", i, b.Device, b.Op, slow.Name())
		}
		if b.Service < delay-5*time.Millisecond || b.Service > 3*delay {
			t.Errorf("outlier %d: service %v, injected %v", i, b.Service, delay)
		}
		if b.Queue > 5*time.Millisecond || e.Latency != b.Queue+b.Service {
			t.Errorf("outlier %d: queue %v, latency %v on an idle disk", i, b.Queue, e.Latency)
		}
		if !offsets[b.Sector] || b.Bytes != readerBlock || b.Inflight != 0 {
			t.Errorf("outlier %d: sector %d bytes %d inflight %d; the reader read %d bytes at sectors %v, one at a time",
				i, b.Sector, b.Bytes, b.Inflight, readerBlock, rep.Offsets)
		}
		if e.CgroupID == 0 {
			t.Errorf("outlier %d: no cgroup id", i)
		}
		if e.Time.Before(start) || e.Time.After(time.Now()) {
			t.Errorf("outlier %d: time %v outside the test's %v..now", i, e.Time, start)
		}
	}

	// A fast disk: fio's thousands of requests, none near 10 ms.
	runFio(t, "--name=fast", "--filename="+fast.Device(), "--direct=1", "--rw=randread",
		"--bs=4k", "--iodepth=4", "--ioengine=libaio", "--number_ios=5000", "--size=64m")
	time.Sleep(200 * time.Millisecond)
	if n := len(sink.Events(func(e flight.Event) bool { return e.Block.Device == fast.Name() })); n != 0 {
		t.Errorf("%d outliers on a fast disk with a 10ms threshold", n)
	}
	if d := p.OutlierDrops(); d != (flight.Drops{}) {
		t.Errorf("drops %+v, want none", d)
	}
}

// Without a sink the probe runs no outlier path at all.
func TestBlockOutliersOff(t *testing.T) {
	p := startProbe(t, Config{})
	if p.outliers != nil {
		t.Error("an outlier reader runs without a sink")
	}
	if got, want := p.outlierRB.MaxEntries(), uint32(os.Getpagesize()); got != want {
		t.Errorf("ring buffer of %d bytes without a sink, want %d", got, want)
	}
}
