// Package faults makes scratch block devices with real, controllable faults,
// for privileged tests of the block I/O probe, for benchmarks, and for
// `nerve drill`.
//
// A SlowDisk is a loop device, with direct I/O on, whose backing file lives
// on a small FUSE filesystem served by this process. Every read and write of
// that file sleeps for the disk's delay before it touches the data, so each
// block request on /dev/loopN takes the delay longer to complete: the kernel
// sees a slow disk, and the block layer (and anything tracing it) measures the
// delay as service time. The delay can be changed while the disk is in use.
// A FastDisk is a loop device over a file in a tmpfs: a fast, healthy device
// for overload tests, whose scheduler and queue depth can be set. A Loop is a
// loop device over any file.
//
// # Promises
//
//   - Nothing outside the scratch directory given to a constructor is created,
//     mounted or removed, apart from the loop devices the package attaches
//     itself (and loading the fuse or loop module when its device node is
//     missing). Each disk lives in its own fresh subdirectory of that
//     directory, so several disks may share it.
//   - Before detaching a loop device, the package checks that it is still
//     bound to the file it attached, so a device number reused by someone
//     else is never detached.
//   - Close detaches the loop device, unmounts what the disk mounted and
//     removes its files. It is idempotent and safe to call after
//     CleanupLeftovers has already torn the disk down.
//   - A loop device keeps its scheduler and queue depth from one binding to
//     the next, so they are set to the loop driver's defaults (no
//     scheduler, hw_queue_depth requests) when a device is attached and
//     again before it is detached.
//   - CleanupLeftovers undoes what a crashed earlier run left in a scratch
//     directory: loop devices backed by files under it, FUSE and tmpfs mounts
//     under it, and the directory itself. It never removes files through a
//     mount it did not manage to unmount.
//
// # The FUSE server
//
// NewSlowDisk starts one goroutine that runs the go-fuse server loop
// (fuse.Server.Serve). That loop reads requests from /dev/fuse and starts
// further reader goroutines whenever all readers are busy, so a request
// sleeping in the injected delay never holds up the others: the loop
// driver's direct I/O reaches the server as asynchronous requests (the
// mount asks the kernel for FUSE_ASYNC_DIO), up to 1024 in flight, so the
// device's own queue depth is what bounds concurrency. Each sleeping
// request blocks one OS thread in clock_nanosleep, which keeps the delay
// exact on busy CPUs where Go timers fire late. All these goroutines end
// when the kernel tears the FUSE connection down, which happens when the
// filesystem is unmounted and its last user (the loop device) has let go of
// it: in Close, in CleanupLeftovers, or when anyone else unmounts it.
// Requests still sleeping then return early.
//
// Everything here needs root, /dev/fuse, loop device support, and losetup from
// util-linux.
package faults
