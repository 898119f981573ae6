//go:build 386 || amd64

package probe

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/jvm/hsperf"
)

var (
	hsSafepointsDesc = prometheus.NewDesc("nerve_jvm_hsperf_safepoints_total",
		"Safepoints of JVMs without usable USDT probes, from their hsperfdata counters (sun.rt.safepoints); summed over a target's JVMs.",
		[]string{"target"}, nil)
	hsSafepointTimeDesc = prometheus.NewDesc("nerve_jvm_hsperf_safepoint_seconds_total",
		"Time JVMs without usable USDT probes spent at safepoints, from hsperfdata (sun.rt.safepointTime).",
		[]string{"target"}, nil)
	hsGCTimeDesc = prometheus.NewDesc("nerve_jvm_hsperf_gc_seconds_total",
		"GC time of JVMs without usable USDT probes, from hsperfdata (sun.gc.collector.N.time).",
		[]string{"target"}, nil)
)

// hsperfFor reads the hsperfdata file of a JVM through its own root, so a
// JVM in a container is read from its /tmp. The file is named after the pid
// the JVM sees itself as (the last NSpid).
func hsperfFor(proc string, pid int) (*hsperf.Snapshot, error) {
	root := filepath.Join(proc, strconv.Itoa(pid), "root")
	nspid := pid
	if b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
						nspid = n
					}
				}
			}
		}
	}
	dirs, err := filepath.Glob(filepath.Join(root, "tmp", "hsperfdata_*"))
	if err != nil || len(dirs) == 0 {
		return nil, os.ErrNotExist
	}
	var lastErr error = os.ErrNotExist
	for _, d := range dirs {
		user := strings.TrimPrefix(filepath.Base(d), "hsperfdata_")
		s, err := hsperf.ReadInRoot(root, user, nspid)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// collectHsperf exports the fallback counters for JVMs without probes.
func (p *Probe) collectHsperf(ch chan<- prometheus.Metric, jvms []JVM) {
	type sums struct{ n, sp, gc float64 }
	by := map[string]*sums{}
	for _, j := range jvms {
		if j.Probes {
			continue
		}
		s, err := hsperfFor(p.cfg.Proc, j.PID)
		if err != nil {
			continue // disabled (-XX:+PerfDisableSharedMem): the log said so when the JVM was found
		}
		n, total, _, err := s.Safepoints()
		if err != nil {
			continue
		}
		_, gc, _ := s.GCTime()
		t := by[j.Label]
		if t == nil {
			t = &sums{}
			by[j.Label] = t
		}
		t.n += float64(n)
		t.sp += total
		t.gc += gc
	}
	for label, t := range by {
		ch <- prometheus.MustNewConstMetric(hsSafepointsDesc, prometheus.CounterValue, t.n, label)
		ch <- prometheus.MustNewConstMetric(hsSafepointTimeDesc, prometheus.CounterValue, t.sp, label)
		ch <- prometheus.MustNewConstMetric(hsGCTimeDesc, prometheus.CounterValue, t.gc, label)
	}
}
