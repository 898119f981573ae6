package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/faults"
	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/probes/flight"
)

// writeConfig writes an agent configuration file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nerve.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// slowDisk makes a FUSE-backed loop device whose requests take delay.
func slowDisk(t *testing.T, delay time.Duration) *faults.SlowDisk {
	t.Helper()
	dir, err := os.MkdirTemp("", "nerve-vm-flight-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.CleanupLeftovers(dir) })
	d, err := faults.NewSlowDisk(dir, 64<<20, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// nerveReport runs `nerve report --json` against the agent and decodes it.
func nerveReport(t *testing.T, bin string, a *agent, args ...string) flight.Report {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"report", "--json", "--agent.address=" + a.addr}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nerve report %v: %v\n%s", args, err, out)
	}
	var r flight.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("nerve report --json: %v\n%s", err, out)
	}
	return r
}

// A slow read by a known process on the slow disk appears in `nerve report`
// with that process's pid and comm, the device, and a latency that matches
// both the injected delay and what dd itself measured.
func TestFlightSlowRead(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "dd", "go")
	const delay, count = 60 * time.Millisecond, 50
	bin := nervetest.Binary(t)
	// The threshold is left to the goals: disk.service_idle_p99.exit, 30ms.
	a := startAgent(t, bin, "--config.file="+writeConfig(t, `
probes:
  runqueue: {enabled: false}
  pagefault: {enabled: false}
  jvm: {enabled: false}
actuator: {enabled: false}
`))
	disk := slowDisk(t, delay)
	dev := disk.Name()

	dd := exec.Command("dd", "if="+disk.Device(), "of=/dev/null", "bs=4k", fmt.Sprintf("count=%d", count), "iflag=direct")
	start := time.Now()
	if out, err := dd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
	perRead := time.Since(start) / count // dd's own figure, process start included
	pid := dd.Process.Pid
	time.Sleep(500 * time.Millisecond) // the ring buffer's reader is asynchronous

	r := nerveReport(t, bin, a, "--device="+dev, "--since=1m")
	var mine []flight.Event
	for _, e := range r.Events {
		if e.Block == nil || e.Block.Device != dev {
			t.Errorf("--device=%s returned %+v", dev, e)
			continue
		}
		if e.PID == pid {
			mine = append(mine, e)
		}
	}
	if len(mine) < count*9/10 || len(mine) > count {
		t.Fatalf("%d outliers of dd (pid %d) on %s, want about %d; report: %d events, %+v", len(mine), pid, dev, count, len(r.Events), r.Summary)
	}
	var lat []time.Duration
	for _, e := range mine {
		if e.Comm != "dd" || e.Block.Op != "read" || e.Block.Bytes != 4096 {
			t.Errorf("outlier %+v %+v: want comm dd, a 4096-byte read", e, *e.Block)
		}
		lat = append(lat, e.Latency)
	}
	slices.Sort(lat)
	median := lat[len(lat)/2]
	t.Logf("dd pid %d: %d outliers on %s, latency min %v median %v max %v; injected %v, dd measured %v per read",
		pid, len(mine), dev, lat[0], median, lat[len(lat)-1], delay, perRead)
	// The first read of a fresh device may wait for more than the disk
	// (dd waited too: its own figure includes it); the rest take the delay.
	if near := len(lat) - slices.IndexFunc(lat, func(d time.Duration) bool { return d > 2*delay }); lat[0] < delay || (near < len(lat) && near > 2) {
		t.Errorf("latencies %v: want all at least the injected %v and all but two under %v", lat, delay, 2*delay)
	}
	if median > perRead {
		t.Errorf("median latency %v is more than dd measured per read (%v)", median, perRead)
	}
	if s, ok := r.Summary.Signal(flight.BlockIO); !ok || s.Devices[0].Name != dev || !slices.ContainsFunc(s.ProcessesByCount, func(p flight.ProcessStat) bool {
		return p.PID == pid && p.Comm == "dd" && p.Count == len(mine)
	}) {
		t.Errorf("summary %+v: want %s the top device and dd (pid %d) with %d outliers", s, dev, pid, len(mine))
	}

	// The readable report names them too.
	out, err := exec.Command(bin, "report", "--agent.address="+a.addr, "--device="+dev, "--pid="+strconv.Itoa(pid)).Output()
	if err != nil {
		t.Fatalf("nerve report: %v", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", pid), "dd", dev, "== blockio"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nerve report lacks %q:\n%s", want, out)
		}
	}
}

// A page-fault stall on an mmap'd file names the file.
func TestFlightPageFaultNamesFile(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "mkfs.ext4", "mount", "umount", "go")
	const delay = 30 * time.Millisecond
	bin := nervetest.Binary(t)
	// The threshold is left to the goals: memory.pagefault_stall_p99.exit,
	// 10ms. The JVM probe stays on, as by default: the capability it keeps
	// (CAP_SYS_PTRACE) is the one that reads other processes' mappings.
	a := startAgent(t, bin, "--config.file="+writeConfig(t, `
probes:
  blockio: {enabled: false}
  runqueue: {enabled: false}
actuator: {enabled: false}
`))
	if !strings.Contains(a.scrape(t), `nerve_probe_attached{probe="pagefault"} 1`) {
		privtest.Skip(t, "the page-fault probe's BPF programs do not run here")
	}
	disk := slowDisk(t, 0)
	mnt := filepath.Join(t.TempDir(), "fs")
	os.Mkdir(mnt, 0o755)
	for _, c := range [][]string{{"mkfs.ext4", "-q", "-F", disk.Device()}, {"mount", disk.Device(), mnt}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	file := filepath.Join(mnt, "nb-1-big-Data.db")
	if err := os.WriteFile(file, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	exec.Command("sync").Run()
	disk.SetDelay(delay)
	if err := faults.Evict(file); err != nil {
		t.Fatal(err)
	}

	// The nerve binary's drill helper "touch" maps the file and faults on
	// random pages of it, dropping them from the page cache as it goes.
	toucher := exec.Command(bin, file)
	toucher.Env = append(os.Environ(), "NERVE_DRILL_HELPER=touch")
	if err := toucher.Start(); err != nil {
		t.Fatal(err)
	}
	pid := toucher.Process.Pid
	time.Sleep(3 * time.Second)
	// Stop before killing: SIGKILL wakes the toucher out of the fault it
	// is nearly always waiting in, and that cut-short stall would be
	// recorded as a short one. SIGSTOP does not end a killable sleep; the
	// fault finishes and the toucher stops on its way back to user space.
	toucher.Process.Signal(syscall.SIGSTOP)
	time.Sleep(4 * delay)
	toucher.Process.Kill()
	toucher.Wait()
	time.Sleep(500 * time.Millisecond)

	r := nerveReport(t, bin, a, "--pid="+strconv.Itoa(pid), "--signal=pagefault", "--since=1m")
	if len(r.Events) < 10 {
		t.Fatalf("%d page-fault outliers of the toucher (pid %d) in 3 s at %v a fault, want dozens", len(r.Events), pid, delay)
	}
	named := 0
	for _, e := range r.Events {
		if e.PID != pid || e.PageFault == nil {
			t.Fatalf("--pid=%d --signal=pagefault returned %+v", pid, e)
		}
		if e.PageFault.File == file {
			named++
		}
		if e.Latency < delay/2 {
			t.Errorf("stall %v, injected %v", e.Latency, delay)
		}
	}
	s, _ := r.Summary.Signal(flight.PageFault)
	t.Logf("toucher pid %d: %d stalls, %d naming %s; p99 %v, injected %v", pid, len(r.Events), named, file, s.P99, delay)
	if named < len(r.Events)*9/10 {
		t.Errorf("%d of %d stalls name %s", named, len(r.Events), file)
	}
	if len(s.Files) == 0 || s.Files[0].Name != file {
		t.Errorf("top files %+v, want %s", s.Files, file)
	}
}

// rss is a process's resident set from /proc/<pid>/status.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A flood, every run-queue wait an outlier, keeps the agent's memory under
// the bound its configuration gives and counts what it drops.
func TestFlightFloodStaysBounded(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "stress-ng", "go")
	const maxEvents = 1000
	bin := nervetest.Binary(t)
	a := startAgent(t, bin, "--config.file="+writeConfig(t, fmt.Sprintf(`
probes:
  blockio: {enabled: false}
  pagefault: {enabled: false}
  jvm: {enabled: false}
actuator: {enabled: false}
flight:
  max_events: %d
  rate: 100000
  thresholds: {runqueue: 1ns}
`, maxEvents)))
	if !strings.Contains(a.scrape(t), `nerve_probe_attached{probe="runqueue"} 1`) {
		privtest.Skip(t, "the run-queue probe's BPF programs do not run here")
	}
	pid := a.cmd.Process.Pid
	time.Sleep(2 * time.Second)
	base := rss(t, pid)
	// The events held at their largest, twice over for the garbage
	// collector's headroom, plus room for the runtime under load.
	const slack = 32 << 20
	bound := base + 2*int64(maxEvents)*int64(len(flight.Signals))*flight.MaxEventBytes + slack

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stress := exec.CommandContext(ctx, "stress-ng", "--switch", "4", "--cpu", "2", "--timeout", "20s", "--quiet")
	if err := stress.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stress.Wait() }()
	peak := base
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stress-ng: %v", err)
			}
			running = false
		case <-time.After(250 * time.Millisecond):
			peak = max(peak, rss(t, pid))
		}
	}
	body := a.scrape(t)
	sig := map[string]string{"signal": "runqueue"}
	total := metricValue(t, body, "nerve_flight_events_total", sig)
	held := metricValue(t, body, "nerve_flight_events", sig)
	drops := map[string]float64{}
	for _, reason := range []string{"ring_full", "rate_limited", "lost"} {
		drops[reason] = metricValue(t, body, "nerve_flight_dropped_total", map[string]string{"signal": "runqueue", "reason": reason})
	}
	t.Logf("flood: %.0f outliers received in 20 s, %.0f held, drops %v; RSS %d MiB before, peak %d MiB, bound %d MiB",
		total, held, drops, base>>20, peak>>20, bound>>20)
	if total < 20*maxEvents {
		t.Fatalf("%.0f outliers in 20 s: not a flood (want over %d)", total, 20*maxEvents)
	}
	if held > maxEvents {
		t.Errorf("%.0f runqueue outliers held, max_events is %d", held, maxEvents)
	}
	if drops["ring_full"] < total-maxEvents {
		t.Errorf("ring_full drops %.0f, want every outlier beyond the %d held (%.0f)", drops["ring_full"], maxEvents, total-maxEvents)
	}
	if peak > bound {
		t.Errorf("RSS peaked at %d bytes, over the bound %d", peak, bound)
	}
	// The agent still answers with a bounded report.
	r := nerveReport(t, bin, a, "--signal=runqueue", "--limit=10")
	if r.Matched > maxEvents || len(r.Events) != 10 {
		t.Errorf("report matched %d, %d events; want at most %d and 10", r.Matched, len(r.Events), maxEvents)
	}
}

// An agent that diagnoses a slow drive writes the decision's bundle before
// its report: SIGKILLed right after the decision appears, the bundle is on
// disk, parses, holds the drive's outliers, and the restarted agent serves it.
func TestFlightBundleSurvivesKill(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "dd", "go")
	bin := nervetest.Binary(t)
	dir := t.TempDir()
	goalsFile := filepath.Join(dir, "goals.yaml")
	quick := "{for: 1s, clear_for: 1s}"
	if err := os.WriteFile(goalsFile, []byte(fmt.Sprintf(`
disk: {service_idle_p99: {enter: 50ms, exit: 30ms, for: 1s, clear_for: 1s, min_requests: 20}, queue_p99: %[1]s}
cpu: {runqueue_p99: %[1]s}
memory: {pagefault_stall_p99: %[1]s}
jvm: {stopped_fraction: %[1]s}
`, quick)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cfg := writeConfig(t, fmt.Sprintf(`
probes:
  runqueue: {enabled: false}
  pagefault: {enabled: false}
  jvm: {enabled: false}
actuator:
  enabled: true
  tick: 2s
  state_dir: %s
  goals_file: %s
flight:
  bundle_lookback: 1m
`, state, goalsFile))
	a := startAgent(t, bin, "--config.file="+cfg)

	disk := slowDisk(t, 60*time.Millisecond)
	dev := disk.Name()
	// One direct reader: every request at in-flight 0, 60 ms each, ~33 a tick.
	dd := exec.Command("dd", "if="+disk.Device(), "of=/dev/null", "bs=4k", "count=100000", "iflag=direct")
	if err := dd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dd.Process.Kill(); dd.Wait() })

	var dec report.Decision
	deadline := time.Now().Add(60 * time.Second)
	for dec.ID == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + a.addr + "/decisions")
		if err != nil {
			t.Fatal(err)
		}
		var ds []report.Decision
		json.NewDecoder(resp.Body).Decode(&ds)
		resp.Body.Close()
		for _, d := range ds {
			if d.Plan.Diagnosis.Kind == actuator.SlowDrive && d.Plan.Diagnosis.Subject == dev {
				dec = d
			}
		}
	}
	if dec.ID == "" {
		t.Fatalf("no slow_drive decision on %s within 60 s", dev)
	}
	a.kill(t)
	t.Logf("decision %s (%s); agent SIGKILLed", dec.ID, dec.Outcome)

	if want := filepath.Join(state, "incidents", dec.ID+".json"); dec.Bundle != want {
		t.Errorf("decision names bundle %q, want %q", dec.Bundle, want)
	}
	data, err := os.ReadFile(filepath.Join(state, "incidents", dec.ID+".json"))
	if err != nil {
		t.Fatalf("bundle after SIGKILL: %v", err)
	}
	var b flight.Report
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("bundle does not parse: %v", err)
	}
	var ours int
	for _, e := range b.Events {
		if e.Block != nil && e.Block.Device == dev && e.PID == dd.Process.Pid && e.Comm == "dd" {
			ours++
		}
	}
	t.Logf("bundle: %d bytes, %d outliers matched, %d raw, %d of dd on %s, window %v to %v",
		len(data), b.Matched, len(b.Events), ours, dev, b.Filter.Since.Format(time.RFC3339), b.Filter.Until.Format(time.RFC3339))
	if b.Decision != dec.ID || b.Kind != string(actuator.SlowDrive) || b.Subject != dev {
		t.Errorf("bundle of %s (%s on %s), want %s", b.Decision, b.Kind, b.Subject, dec.ID)
	}
	if ours < 20 {
		t.Errorf("%d outliers of dd on %s in the bundle, want the reads behind the diagnosis (20 or more)", ours, dev)
	}
	if s, ok := b.Summary.Signal(flight.BlockIO); !ok || s.Devices[0].Name != dev {
		t.Errorf("bundle summary %+v: want %s the top device", b.Summary, dev)
	}
	if !b.Filter.Since.Before(dec.Plan.Diagnosis.Since) || b.Filter.Until.After(dec.At) {
		t.Errorf("window %v to %v, want from before the diagnosis (%v) to the decision (%v)", b.Filter.Since, b.Filter.Until, dec.Plan.Diagnosis.Since, dec.At)
	}
	left, _ := filepath.Glob(filepath.Join(state, "incidents", ".*"))
	if len(left) != 0 {
		t.Logf("temporary files after SIGKILL: %v (removed at the next start)", left)
	}

	// The next agent on the same state serves it.
	dd.Process.Kill()
	a2 := startAgent(t, bin, "--config.file="+cfg)
	var list []flight.Incident
	resp, err := http.Get("http://" + a2.addr + "/incidents")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if !slices.ContainsFunc(list, func(i flight.Incident) bool { return i.ID == dec.ID && i.Counts[flight.BlockIO] > 0 }) {
		t.Errorf("GET /incidents after the restart: %+v, want %s with block I/O outliers", list, dec.ID)
	}
	got := nerveReport(t, bin, a2, "--id="+dec.ID)
	if got.Decision != dec.ID || got.Matched != b.Matched {
		t.Errorf("nerve report --id %s: decision %q, %d matched; want the bundle (%d)", dec.ID, got.Decision, got.Matched, b.Matched)
	}
}
