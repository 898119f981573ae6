package drill

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// helperEnv names the helper a process started by a drill is to be.
const helperEnv = "NERVE_DRILL_HELPER"

// RunHelper turns this process into a drill helper and never returns when
// it was started as one (helperEnv set); otherwise it returns at once. A
// binary that runs drills calls it first thing (an init function will do),
// because a drill starts its helpers by running its own executable again:
// that way a helper is a separate process a drill can put in its cgroup,
// and no other program is needed on the machine.
//
// The helpers:
//   - cpu: spins forever.
//   - read PATH N: N threads each read random 4 KiB blocks of PATH (a block
//     device) with direct I/O, one at a time, forever.
//   - touch PATH: maps PATH (a block device) read-only and touches its pages
//     at random, dropping them from the page cache as it goes, so that
//     nearly every touch is a major fault that waits for the device.
func RunHelper() {
	kind := os.Getenv(helperEnv)
	if kind == "" {
		return
	}
	switch kind {
	case "cpu":
		spin()
	case "read":
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "drill helper read: want PATH and a number of readers")
			os.Exit(2)
		}
		n, err := strconv.Atoi(os.Args[2])
		if err == nil {
			err = read(os.Args[1], n)
		}
		fmt.Fprintf(os.Stderr, "drill helper read: %v\n", err)
		os.Exit(1)
	case "touch":
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, "drill helper touch: no path")
			os.Exit(2)
		}
		if err := touch(os.Args[1]); err != nil {
			fmt.Fprintf(os.Stderr, "drill helper touch: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "drill helper: unknown kind %q\n", kind)
	os.Exit(2)
}

//go:noinline
func spin() {
	var x uint64
	for {
		x = x*6364136223846793005 + 1442695040888963407
	}
}

// sink keeps the touches from being optimised away.
var sink byte

// touch faults in random pages of path's mapping forever.
func touch(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	size, err := f.Seek(0, 2)
	if err != nil || size < 1<<20 {
		return fmt.Errorf("size of %s: %d, %v", path, size, err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", path, err)
	}
	// No read-around: one fault, one page read from the device.
	if err := unix.Madvise(m, unix.MADV_RANDOM); err != nil {
		return fmt.Errorf("madvise: %w", err)
	}
	pages := len(m) / os.Getpagesize()
	for i := 0; ; i++ {
		sink += m[rand.IntN(pages)*os.Getpagesize()]
		if i%64 == 63 {
			// Unmap the touched pages and drop them from the page cache,
			// so that touching them again faults on the device again.
			unix.Madvise(m, unix.MADV_DONTNEED)
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
	}
}

// startHelper runs this executable again as the named helper, in the
// cgroup cgDir, killed when the drill's thread that forked it dies, and
// records it in the scratch directory.
func (s *scratch) startHelper(cgDir, kind string, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("helper %s: %w", kind, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = "nerve-drill-" + kind
	cmd.Env = append(os.Environ(), helperEnv+"="+kind)
	return cmd, s.start(cmd, cgDir)
}

// start starts cmd in the cgroup cgDir and records it.
func (s *scratch) start(cmd *exec.Cmd, cgDir string) error {
	cg, err := os.Open(cgDir)
	if err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	defer cg.Close()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Born in the cgroup (clone3, Linux 5.7): the target's figures
		// count it from its first instruction.
		UseCgroupFD: true, CgroupFD: int(cg.Fd()),
		Pdeathsig: syscall.SIGKILL, // see startLocked
	}
	if err := startLocked(cmd); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	if err := s.record(procsFile, procLine(pid, startTime(pid))); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	// Reaped when it exits; the drill's cleanup kills the cgroup.
	go cmd.Wait()
	return nil
}

// forker starts processes from one OS thread that lives as long as this
// process. The parent-death signal follows the thread that forked, not the
// process, and the Go runtime ends threads whose goroutine exits while
// locked to them (the FUSE server's sleepers, for one): a child forked from
// such a thread would be killed when that thread ends, in the middle of its
// drill. From this thread, children die exactly when the drill does, even
// by SIGKILL.
var forker struct {
	once sync.Once
	reqs chan forkReq
}

type forkReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startLocked(cmd *exec.Cmd) error {
	forker.once.Do(func() {
		forker.reqs = make(chan forkReq)
		// Never ends: the thread must outlive every child.
		go func() {
			runtime.LockOSThread()
			for r := range forker.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	forker.reqs <- forkReq{cmd, done}
	return <-done
}

// read runs n readers of random 4 KiB blocks of dev, with direct I/O, one
// request at a time each, until the process is killed. The load runs in a
// helper, never in the drill's own process: a thread waiting in the block
// layer for a request the FUSE server of the same process should complete
// would keep that process from ever exiting when it is killed.
func read(dev string, n int) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	size, err := unix.Seek(fd, 0, 2)
	if err != nil || size < 1<<20 {
		return fmt.Errorf("size of %s: %d, %v", dev, size, err)
	}
	errs := make(chan error, n)
	for range n {
		// Ends only on an error; the process ends with the drill.
		go func() {
			// Page-aligned, as O_DIRECT wants.
			buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				errs <- err
				return
			}
			for {
				if _, err := unix.Pread(fd, buf, rand.Int64N(size/4096)*4096); err != nil {
					errs <- fmt.Errorf("read %s: %w", dev, err)
					return
				}
			}
		}()
	}
	return <-errs
}
