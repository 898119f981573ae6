package blockio

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/fio"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/histogram"
)

// These tests create real devices and real I/O, and compare what the probe
// saw with what fio measured on its own.

func startProbe(t *testing.T, cfg Config) *Probe {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "fio", "losetup")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), cfg)
	if err != nil {
		privtest.Skip(t, fmt.Sprintf("blockio probe cannot load here: %v", err))
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func scratch(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nerve-blockio-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.CleanupLeftovers(dir) })
	return dir
}

func device(t *testing.T, p *Probe, name string) DeviceStats {
	t.Helper()
	s, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Drops {
		if v != 0 && k != "completion_without_issue" {
			t.Errorf("drops[%s] = %d", k, v)
		}
	}
	if d := s.Device(name); d != nil {
		return *d
	}
	return DeviceStats{Name: name}
}

// since subtracts an earlier reading of the same device.
func since(now, before DeviceStats) DeviceStats {
	d := now
	for op := range d.Ops {
		a, b := &d.Ops[op], &before.Ops[op]
		a.Requests -= b.Requests
		a.Errors -= b.Errors
		a.QueueUnknown -= b.QueueUnknown
		sub(&a.Queue, &b.Queue)
		for c := range a.Service {
			sub(&a.Service[c], &b.Service[c])
		}
	}
	return d
}

func sub(a, b *histogram.Hist) {
	for i := range a.Counts {
		a.Counts[i] -= b.Counts[i]
	}
	a.SumNs -= b.SumNs
}

func runFio(t *testing.T, args ...string) *fio.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := fio.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The probe counts every request fio issues, no more and no fewer, on
// tp_btf and on the raw_tp fallback.
func TestRequestCountMatchesFio(t *testing.T) { inEveryMode(t, testRequestCount) }

// inEveryMode runs test once per mode: on tp_btf, which this kernel has,
// and on the raw_tp fallback, forced.
func inEveryMode(t *testing.T, test func(t *testing.T, mode Mode)) {
	for _, mode := range []Mode{ModeBTF, ModeRawTP} {
		t.Run(string(mode), func(t *testing.T) {
			if mode == ModeRawTP {
				tryBTF = false
				defer func() { tryBTF = true }()
			}
			test(t, mode)
		})
	}
}

func testRequestCount(t *testing.T, mode Mode) {
	p := startProbe(t, Config{})
	if p.Mode() != mode {
		t.Fatalf("probe runs in mode %s, want %s", p.Mode(), mode)
	}
	disk, err := faults.NewFastDisk(scratch(t), 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()

	before := device(t, p, disk.Name())
	r := runFio(t, "--name=count", "--filename="+disk.Device(), "--direct=1", "--rw=randrw",
		"--bs=4k", "--iodepth=8", "--ioengine=libaio", "--number_ios=20000", "--size=256m", "--randrepeat=0")
	time.Sleep(100 * time.Millisecond) // let the last completions land
	got := since(device(t, p, disk.Name()), before)

	wantR, wantW := r.TotalIOs()
	for _, c := range []struct {
		op        Op
		got, want uint64
	}{{OpRead, got.Ops[OpRead].Requests, wantR}, {OpWrite, got.Ops[OpWrite].Requests, wantW}} {
		t.Logf("%s: nerve %d, fio %d", c.op, c.got, c.want)
		if c.want == 0 || math.Abs(float64(c.got)-float64(c.want)) > 0.01*float64(c.want) {
			t.Errorf("%s requests: nerve counted %d, fio issued %d (more than 1%% apart)", c.op, c.got, c.want)
		}
	}
	if got.Ops[OpRead].Errors+got.Ops[OpWrite].Errors != 0 {
		t.Errorf("errors counted on a healthy device: %+v", got.Ops)
	}
}

// A drive that is slow on its own shows it at in-flight 0.
func TestSlowDriveServiceTime(t *testing.T) {
	p := startProbe(t, Config{})
	const delay = 20 * time.Millisecond
	disk, err := faults.NewSlowDisk(scratch(t), 64<<20, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()

	before := device(t, p, disk.Name())
	r := runFio(t, "--name=slow", "--filename="+disk.Device(), "--direct=1", "--rw=randread",
		"--bs=4k", "--iodepth=1", "--ioengine=psync", "--number_ios=60", "--size=64m", "--percentile_list=50:99")
	got := since(device(t, p, disk.Name()), before)

	reads := got.Ops[OpRead]
	at0 := reads.Service[Inflight0]
	median := at0.Quantile(0.5)
	fioMedian, ok := r.Jobs[0].Read.Clat.Percentile(50)
	if !ok {
		t.Fatal("fio reported no median")
	}
	t.Logf("service at in-flight 0: n=%d median=%.2fms; fio clat median=%.2fms mean=%.2fms; queue median=%.3fms",
		at0.Count(), median/1e6, fioMedian/1e6, r.Jobs[0].Read.Clat.Mean/1e6, reads.Queue.Quantile(0.5)/1e6)
	if at0.Count() < 55 {
		t.Errorf("only %d of 60 reads at in-flight 0", at0.Count())
	}
	if rel := math.Abs(median-float64(delay)) / float64(delay); rel > 0.15 {
		t.Errorf("service median at in-flight 0 = %.2fms, injected %v: %.0f%% off (max 15%%)", median/1e6, delay, rel*100)
	}
	if rel := math.Abs(median-fioMedian) / fioMedian; rel > 0.15 {
		t.Errorf("nerve median %.2fms and fio's %.2fms disagree by %.0f%%", median/1e6, fioMedian/1e6, rel*100)
	}
	if q := reads.Queue.Quantile(0.5); q > 0.1*float64(delay) {
		t.Errorf("queue median %.2fms on an unloaded slow drive, want far below the delay", q/1e6)
	}
}

// A healthy drive under too much work shows queue time, not drive latency.
//
// The drive answers every request in 1 ms whatever the load (a FUSE-backed
// loop device): a tmpfs-backed loop device is so fast that on two cores fio
// runs out of CPU long before the block layer queues anything, so the wait
// would be in fio, not in front of the drive. The load is 64 threads of
// synchronous reads, like a database's read threads: libaio on a saturated
// device gets EAGAIN (REQ_NOWAIT) and retries in user space, where no block
// tracepoint can see the wait.
func TestOverloadShowsAsQueueTime(t *testing.T) {
	p := startProbe(t, Config{})
	for _, sched := range []string{"none", "mq-deadline"} {
		t.Run(sched, func(t *testing.T) {
			disk, err := faults.NewSlowDisk(scratch(t), 256<<20, time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			if err := disk.SetScheduler(sched); err != nil {
				t.Fatal(err)
			}
			if err := disk.SetNrRequests(4); err != nil {
				t.Fatal(err)
			}
			// Light load first: the drive's own latency, at in-flight 0.
			runFio(t, "--name=light", "--filename="+disk.Device(), "--direct=1", "--rw=randread",
				"--bs=4k", "--iodepth=1", "--ioengine=psync", "--number_ios=500", "--size=256m")
			light := device(t, p, disk.Name())
			runFio(t, "--name=heavy", "--filename="+disk.Device(), "--direct=1", "--rw=randread",
				"--bs=4k", "--ioengine=psync", "--thread", "--numjobs=64", "--time_based", "--runtime=3", "--size=256m")
			all := device(t, p, disk.Name())
			heavy := since(all, light)

			svc0 := all.Ops[OpRead].Service[Inflight0].Quantile(0.5)
			// p90: on a busy machine some submitters lose their CPU rather
			// than wait for a tag, which shortens the median wait.
			q := heavy.Ops[OpRead].Queue.Quantile(0.9)
			svcHeavy := heavy.ServiceAll(OpRead)
			t.Logf("%s: service at in-flight 0 median %.1fus; heavy: queue p90 %.1fus median %.1fus (n=%d), service median %.1fus, queue unknown %d",
				sched, svc0/1e3, q/1e3, heavy.Ops[OpRead].Queue.Quantile(0.5)/1e3, heavy.Ops[OpRead].Queue.Count(), svcHeavy.Quantile(0.5)/1e3, heavy.Ops[OpRead].QueueUnknown)
			if heavy.Ops[OpRead].QueueUnknown != 0 {
				t.Errorf("%d requests without queue time", heavy.Ops[OpRead].QueueUnknown)
			}
			if !(q > 3*svc0) {
				t.Errorf("queue p90 %.1fus is not well above service at in-flight 0 (%.1fus)", q/1e3, svc0/1e3)
			}
			if svc0 > 3e6 {
				t.Errorf("service at in-flight 0 = %.2fms on a healthy 1ms drive, want far below a slow drive's 20ms", svc0/1e6)
			}
		})
	}
}
