package preflight

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nervehq/nerve/internal/mountinfo"
)

// scratchPrefix starts the name of the burn-in's scratch file; the pid of
// the process that made it follows, so a later run can tell a leftover of
// a killed run from a file in use.
const scratchPrefix = ".nerve-preflight."

// maxSamples bounds the latencies one burn-in keeps (32 MiB of them): a
// fast drive at a high depth would otherwise grow them without bound over
// a long duration. The random phase ends early when it is reached, with
// far more samples than a p99 needs.
const maxSamples = 1 << 22

// fillChunk is the request size that writes the scratch file before the
// random phase.
const fillChunk = 1 << 20

// hangGrace is how long past its timeout a burn-in may take to return
// before its drive counts as hung: the burn-in checks its context between
// requests, so only a request stuck in the kernel takes longer.
const hangGrace = 2 * time.Second

// DiskFigures is what a mount's burn-in measured. Latencies are from the
// request's system call to its return: the drive's service time plus the
// filesystem's and the block layer's cost, which direct I/O keeps small.
type DiskFigures struct {
	MountPoint string `json:"mount_point"` // the mount the path lies in
	Source     string `json:"source"`      // its device, as mountinfo names it
	FSType     string `json:"fstype"`

	Pattern   string `json:"pattern"`
	BlockSize int    `json:"block_size_bytes"`
	Depth     int    `json:"depth"`
	FileBytes int64  `json:"file_bytes"`

	// Writing the scratch file in 1 MiB requests.
	FillSeconds        float64 `json:"fill_seconds"`
	FillBytesPerSecond float64 `json:"fill_bytes_per_second"`

	// The random phase.
	Seconds         float64 `json:"seconds"`
	Reads           int64   `json:"reads"`
	Writes          int64   `json:"writes"`
	P50Seconds      float64 `json:"p50_seconds"`
	P99Seconds      float64 `json:"p99_seconds"`
	MaxSeconds      float64 `json:"max_seconds"`
	MeanSeconds     float64 `json:"mean_seconds"`
	ReadP99Seconds  float64 `json:"read_p99_seconds,omitempty"`
	WriteP99Seconds float64 `json:"write_p99_seconds,omitempty"`
	BytesPerSecond  float64 `json:"bytes_per_second"`
	IOPS            float64 `json:"iops"`
}

func diskGoal(spec DiskSpec) string {
	g := "p99 ≤ " + spec.MaxP99.String()
	if spec.MinBytesPerSecond > 0 {
		g += ", ≥ " + formatRate(spec.MinBytesPerSecond)
	}
	return g
}

// checkDisk burns in mount and checks the figures against spec's goals.
func checkDisk(ctx context.Context, logger *slog.Logger, mount string, spec DiskSpec) Check {
	c := Check{Kind: "disk", Target: mount, Goal: diskGoal(spec)}
	fi, err := os.Stat(mount)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.fail("not found (is the data disk mounted?)")
		return c
	case err != nil:
		c.fail("%v", err)
		return c
	case !fi.IsDir():
		c.fail("not a directory")
		return c
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mount, &st); err != nil {
		c.fail("statfs: %v", err)
		return c
	}
	if free := int64(st.Bavail) * st.Bsize; free < spec.Size {
		c.fail("%d MiB free, the burn-in needs %d MiB", free>>20, spec.Size>>20)
		return c
	}
	removeLeftovers(logger, mount)

	bctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	type outcome struct {
		f   *DiskFigures
		err error
	}
	done := make(chan outcome, 1)
	// The goroutine ends when burnIn returns, which it does soon after
	// bctx ends unless a request is stuck in the kernel; then it is left
	// behind, and the check fails below.
	go func() {
		f, err := burnIn(bctx, mount, spec)
		done <- outcome{f, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(spec.Timeout + hangGrace):
		c.fail("a request to the drive did not return within %v (drive hangs?)", spec.Timeout)
		return c
	}
	switch {
	case o.err != nil && ctx.Err() != nil:
		c.fail("interrupted: %v", context.Cause(ctx))
		return c
	case errors.Is(o.err, context.DeadlineExceeded):
		c.fail("burn-in did not finish within %v (preflight.disk.timeout): the drive is far too slow", spec.Timeout)
		return c
	case o.err != nil:
		c.fail("%v", o.err)
		return c
	}
	f := o.f
	if mi, ok := mountOf(mount); ok {
		f.MountPoint, f.Source, f.FSType = mi.Point, mi.Source, mi.FSType
	}
	c.Disk = f
	p99 := time.Duration(f.P99Seconds * float64(time.Second))
	c.Figure = fmt.Sprintf("p99 %s, %s, %.0f IOPS", formatDuration(p99), formatRate(f.BytesPerSecond), f.IOPS)
	c.Pass = true
	var why []string
	if p99 > spec.MaxP99 {
		why = append(why, fmt.Sprintf("p99 %s above %v", formatDuration(p99), spec.MaxP99))
	}
	if spec.MinBytesPerSecond > 0 && f.BytesPerSecond < spec.MinBytesPerSecond {
		why = append(why, fmt.Sprintf("throughput %s below %s", formatRate(f.BytesPerSecond), formatRate(spec.MinBytesPerSecond)))
	}
	if len(why) > 0 {
		c.fail("%s", strings.Join(why, "; "))
	}
	return c
}

// burnIn writes a scratch file of spec.Size in mount with direct I/O, then
// runs spec.Depth workers of random requests on it for spec.Duration, and
// removes it. It returns early with ctx's error when ctx ends.
func burnIn(ctx context.Context, mount string, spec DiskSpec) (*DiskFigures, error) {
	path := filepath.Join(mount, scratchPrefix+strconv.Itoa(os.Getpid()))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("the filesystem does not support direct I/O (open %s with O_DIRECT: %w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("create scratch file: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer func() {
		unix.Close(fd)
		os.Remove(path)
	}()
	f := &DiskFigures{Pattern: spec.Pattern, BlockSize: spec.BlockSize, Depth: spec.Depth, FileBytes: spec.Size}

	// Reads of blocks never written cost the drive nothing (the
	// filesystem answers zeros), so the whole file is written first.
	chunk := int(min(spec.Size, fillChunk))
	buf, err := alignedBuffer(chunk)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	rand.Read(buf) // random data: no drive can compress or deduplicate it
	start := time.Now()
	for off := int64(0); off < spec.Size; off += int64(chunk) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := pio(fd, buf, off, true); err != nil {
			return nil, fmt.Errorf("write scratch file: %w", err)
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		return nil, fmt.Errorf("sync scratch file: %w", err)
	}
	fill := time.Since(start)
	f.FillSeconds = fill.Seconds()
	f.FillBytesPerSecond = float64(spec.Size) / fill.Seconds()

	type worker struct {
		reads, writes []time.Duration
		err           error
	}
	ws := make([]worker, spec.Depth)
	bufs := make([][]byte, spec.Depth)
	for i := range bufs {
		if bufs[i], err = alignedBuffer(spec.BlockSize); err != nil {
			return nil, err
		}
		defer unix.Munmap(bufs[i])
		rand.Read(bufs[i])
	}
	rctx, stop := context.WithTimeout(ctx, spec.Duration)
	defer stop()
	blocks := spec.Size / int64(spec.BlockSize)
	perWorker := maxSamples / spec.Depth
	var wg sync.WaitGroup
	start = time.Now()
	for i := range ws {
		w, b := &ws[i], bufs[i]
		// Each worker ends at the duration, at its share of maxSamples,
		// or at the first error (which stops the others).
		wg.Go(func() {
			for rctx.Err() == nil && len(w.reads)+len(w.writes) < perWorker {
				off := mrand.Int64N(blocks) * int64(spec.BlockSize)
				write := spec.Pattern == "randwrite" || (spec.Pattern == "randrw" && mrand.IntN(2) == 0)
				t0 := time.Now()
				err := pio(fd, b, off, write)
				lat := time.Since(t0)
				if err != nil {
					op := "read"
					if write {
						op = "write"
					}
					w.err = fmt.Errorf("%s of %d bytes at offset %d: %w", op, len(b), off, err)
					stop()
					return
				}
				if write {
					w.writes = append(w.writes, lat)
				} else {
					w.reads = append(w.reads, lat)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all, reads, writes []time.Duration
	for _, w := range ws {
		if w.err != nil {
			return nil, w.err
		}
		reads = append(reads, w.reads...)
		writes = append(writes, w.writes...)
	}
	all = append(append(all, reads...), writes...)
	l := Summarise(all)
	f.Seconds = elapsed.Seconds()
	f.Reads, f.Writes = int64(len(reads)), int64(len(writes))
	f.P50Seconds, f.P99Seconds = l.P50.Seconds(), l.P99.Seconds()
	f.MaxSeconds, f.MeanSeconds = l.Max.Seconds(), l.Mean.Seconds()
	f.ReadP99Seconds = Summarise(reads).P99.Seconds()
	f.WriteP99Seconds = Summarise(writes).P99.Seconds()
	f.IOPS = float64(l.Count) / elapsed.Seconds()
	f.BytesPerSecond = f.IOPS * float64(spec.BlockSize)
	return f, nil
}

// pio reads or writes all of b at off, trying again after EINTR.
func pio(fd int, b []byte, off int64, write bool) error {
	for {
		var n int
		var err error
		if write {
			n, err = unix.Pwrite(fd, b, off)
		} else {
			n, err = unix.Pread(fd, b, off)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n != len(b) && write:
			return io.ErrShortWrite
		case n != len(b):
			return io.ErrUnexpectedEOF
		}
		return nil
	}
}

// alignedBuffer returns n bytes aligned to a page, as O_DIRECT needs.
func alignedBuffer(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("allocate %d-byte I/O buffer: %w", n, err)
	}
	return b, nil
}

// removeLeftovers removes scratch files in mount whose process is gone.
func removeLeftovers(logger *slog.Logger, mount string) {
	matches, _ := filepath.Glob(filepath.Join(mount, scratchPrefix+"*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), scratchPrefix))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) != unix.ESRCH {
			continue // alive, or not ours to judge
		}
		if err := os.Remove(m); err == nil {
			logger.Info("removed scratch file of an earlier run", "file", m)
		}
	}
}

// mountOf returns the mount path lies in: the last-mounted entry with the
// longest mount point that is path or a parent of it.
func mountOf(path string) (mountinfo.Mount, bool) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	ms, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		return mountinfo.Mount{}, false
	}
	var best mountinfo.Mount
	found := false
	for _, m := range ms {
		under := path == m.Point || m.Point == "/" || strings.HasPrefix(path, m.Point+"/")
		if under && (!found || len(m.Point) >= len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}
