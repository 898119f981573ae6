package pagefault

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/flight/flighttest"
	"github.com/nervehq/nerve/probes/histogram"
	"github.com/nervehq/nerve/probes/targets"
)

const (
	envChild = "NERVE_PAGEFAULT_CHILD" // file to fault in, or "anon"
	envPages = "NERVE_PAGEFAULT_PAGES"
)

var sink byte

// childReport is what the child measured itself.
type childReport struct {
	Touches   int   `json:"touches"`
	BlockedNs int64 `json:"blocked_ns"` // wall time spent in the touching loads
	Pages     []int `json:"pages"`      // the pages touched, in order
}

// TestMain lets the test binary act as the faulting child: a separate
// process, in a cgroup of its own, touching pages of an mmap'd file.
func TestMain(m *testing.M) {
	if what := os.Getenv(envChild); what != "" {
		if err := child(what); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(what string) error {
	pages, err := strconv.Atoi(os.Getenv(envPages))
	if err != nil {
		return err
	}
	page := os.Getpagesize()
	var mem []byte
	if what == "anon" {
		mem, err = unix.Mmap(-1, 0, 4*pages*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	} else {
		f, err2 := os.Open(what)
		if err2 != nil {
			return err2
		}
		defer f.Close()
		st, _ := f.Stat()
		mem, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err == nil {
			// One page per fault: no readahead, as Cassandra advises for SSTables.
			err = unix.Madvise(mem, unix.MADV_RANDOM)
		}
	}
	if err != nil {
		return err
	}
	n := len(mem) / page
	order := rand.Perm(n)[:pages]
	// Tell the parent we are set up, and wait for its go: start-up faults
	// of the child itself fall outside the measured window.
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	var sum byte
	var blocked time.Duration
	for _, p := range order {
		start := time.Now()
		sum += mem[p*page]
		blocked += time.Since(start)
	}
	sink = sum // keeps the compiler from dropping the loads
	return json.NewEncoder(os.Stdout).Encode(childReport{Touches: pages, BlockedNs: blocked.Nanoseconds(), Pages: order})
}

// runChild runs the child in the cgroup v2 directory cgroupDir and calls
// mark right before it starts touching pages.
func runChild(t *testing.T, cgroupDir, what string, pages int, mark func()) childReport {
	t.Helper()
	r, _ := runChildPID(t, cgroupDir, what, pages, mark)
	return r
}

// runChildPID is runChild that also returns the child's pid.
func runChildPID(t *testing.T, cgroupDir, what string, pages int, mark func()) (childReport, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" -test.run=^$`, "sh", cgroupDir, os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"="+what, envPages+"="+strconv.Itoa(pages))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child did not get ready: %q %v", line, err)
	}
	time.Sleep(200 * time.Millisecond) // let the probe's target refresh see it
	mark()
	fmt.Fprintln(stdin, "go")
	var r childReport
	if err := json.NewDecoder(out).Decode(&r); err != nil {
		t.Fatalf("child report: %v", err)
	}
	return r, cmd.Process.Pid
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// slowFile makes a 16 MiB file on an ext4 filesystem on a disk that takes
// delay for every request, and drops the page cache so that every page of
// it must be read from the disk.
func slowFile(t *testing.T, delay time.Duration) string {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "losetup", "mkfs.ext4", "mount", "umount")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	scratch, err := os.MkdirTemp("", "nerve-pagefault-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.CleanupLeftovers(scratch) })

	disk, err := faults.NewSlowDisk(scratch, 64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	run(t, "mkfs.ext4", "-q", "-F", disk.Device())
	mnt := filepath.Join(scratch, "fs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", disk.Device(), mnt)
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	file := filepath.Join(mnt, "sstable")
	if err := os.WriteFile(file, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sync")
	disk.SetDelay(delay)
	// Drop the file's pages so that every touch reads the disk; only its:
	// a child whose own code faulted in from the root disk would stall on
	// something else.
	if err := faults.Evict(file); err != nil {
		t.Fatal(err)
	}
	return file
}

// Faults on an mmap'd file on a slow disk are stalls of about the disk's
// delay each; faults on anonymous memory are none.
func TestStallsOnSlowMmap(t *testing.T) {
	const delay = 20 * time.Millisecond
	file := slowFile(t, delay)

	rel, dir := privtest.Cgroup(t)
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Config{Targets: []targets.Target{{Name: "reader", Cgroup: rel}}, Refresh: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Attached() {
		privtest.Skip(t, fmt.Sprintf("page-fault programs cannot run here: %v", p.bpfErr))
	}

	read := func() histogram.Hist {
		s, err := p.Read()
		if err != nil {
			t.Fatal(err)
		}
		return s.Targets["reader"]
	}

	const pages = 60
	var before histogram.Hist
	r := runChild(t, dir, file, pages, func() { before = read() })
	got := read()
	for i := range got.Counts {
		got.Counts[i] -= before.Counts[i]
	}
	got.SumNs -= before.SumNs

	t.Logf("file: %d touches blocked %.1fms in all; nerve: %d stalls, median %.2fms, total %.1fms",
		r.Touches, float64(r.BlockedNs)/1e6, got.Count(), got.Quantile(0.5)/1e6, float64(got.SumNs)/1e6)
	if n := float64(got.Count()); n < 0.9*pages || n > 1.1*pages {
		t.Errorf("nerve saw %d stalls for %d faulting touches", got.Count(), pages)
	}
	if m := got.Quantile(0.5); math.Abs(m-float64(delay))/float64(delay) > 0.25 {
		t.Errorf("median stall %.2fms, injected %v (more than 25%% apart)", m/1e6, delay)
	}
	if rel := math.Abs(float64(got.SumNs)-float64(r.BlockedNs)) / float64(r.BlockedNs); rel > 0.10 {
		t.Errorf("total stall %.1fms vs the child's own blocked time %.1fms: %.0f%% apart (max 10%%)",
			float64(got.SumNs)/1e6, float64(r.BlockedNs)/1e6, rel*100)
	}

	// Control: anonymous memory faults never block on I/O.
	r = runChild(t, dir, "anon", 2000, func() { before = read() })
	got = read()
	if n := got.Count() - before.Count(); n != 0 {
		t.Errorf("%d stalls for %d anonymous-memory touches, want 0", n, r.Touches)
	}
}

// Stalls on an mmap'd file on a slow disk are outliers naming the thread,
// its cgroup, and the file and offset of each page it touched.
func TestPageFaultOutliers(t *testing.T) {
	const delay, pages = 20 * time.Millisecond, 40
	file := slowFile(t, delay)
	_, dir := privtest.Cgroup(t)
	cg, err := targets.CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	sink := &flighttest.Sink{}
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Config{Outliers: sink, OutlierStall: delay / 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Attached() {
		privtest.Skip(t, fmt.Sprintf("page-fault programs cannot run here: %v", p.bpfErr))
	}

	r, pid := runChildPID(t, dir, file, pages, func() {})
	mine := func(e flight.Event) bool { return e.PID == pid }
	got := sink.Wait(pages, 3*time.Second, mine)
	page := uint64(os.Getpagesize())
	touched := map[uint64]bool{}
	for _, pg := range r.Pages {
		touched[uint64(pg)*page] = true
	}
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if n := len(got); n < pages*9/10 || n > pages*11/10 {
		t.Errorf("%d outliers from the child (pid %d) for %d faulting touches", n, pid, pages)
	}
	for i, e := range got {
		pf := e.PageFault
		if i == 0 {
			t.Logf("first: %+v %+v", e, *pf)
		}
		if e.Signal != flight.PageFault || pf == nil {
			t.Fatalf("outlier %d: signal %q, pagefault %v", i, e.Signal, pf)
		}
		if pf.File != file || !touched[pf.Offset] {
			t.Errorf("outlier %d: file %q offset %d (address %#x), want %q at one of the touched pages",
				i, pf.File, pf.Offset, pf.Address, file)
		}
		if e.Comm != comm || e.CgroupID != cg || e.TID == 0 {
			t.Errorf("outlier %d: comm %q cgroup %d tid %d, want %q %d", i, e.Comm, e.CgroupID, e.TID, comm, cg)
		}
		if e.Latency < delay/2 || e.Latency > 10*delay {
			t.Errorf("outlier %d: stall %v, injected %v", i, e.Latency, delay)
		}
	}

	// Anonymous memory: no stall, no outlier.
	_, pid = runChildPID(t, dir, "anon", 2000, func() {})
	time.Sleep(200 * time.Millisecond)
	if n := len(sink.Events(func(e flight.Event) bool { return e.PID == pid })); n != 0 {
		t.Errorf("%d outliers for anonymous-memory touches", n)
	}
	if d := p.OutlierDrops(); d != (flight.Drops{}) {
		t.Errorf("drops %+v, want none", d)
	}
}
