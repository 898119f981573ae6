package pagefault

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/probes/histogram"
)

var (
	stallDesc = prometheus.NewDesc("nerve_pagefault_stall_seconds",
		"Time user threads were blocked inside a page fault (one observation per blocking sleep, until the thread ran again); target=\"node\" is every thread on the node.",
		[]string{"target"}, nil)
	majorDesc = prometheus.NewDesc("nerve_pagefaults_major_total",
		"Major page faults (faults that needed I/O), from /proc/vmstat for the node and /proc/<pid>/stat for process targets.",
		[]string{"target"}, nil)
)

// Collector exports the probe's metrics at scrape time.
type Collector struct {
	p         *Probe
	perOctave int
}

// Collector returns a prometheus.Collector with perOctave exported buckets
// per power of two (1, 2 or 4).
func (p *Probe) Collector(perOctave int) *Collector {
	if !histogram.ValidPerOctave(perOctave) {
		perOctave = 2
	}
	return &Collector{p: p, perOctave: perOctave}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stallDesc
	ch <- majorDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	if p.k != nil {
		s, err := p.Read()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(stallDesc, err)
		} else {
			ch <- s.Node.Metric(stallDesc, c.perOctave, NodeTarget)
			for name, h := range s.Targets {
				ch <- h.Metric(stallDesc, c.perOctave, name)
			}
		}
	}
	if n, err := readMajorFaults(filepath.Join(p.cfg.Resolver.Proc, "vmstat")); err != nil {
		ch <- prometheus.NewInvalidMetric(majorDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(majorDesc, prometheus.CounterValue, float64(n), NodeTarget)
	}
	set := p.tracker.Current()
	perTarget := map[uint32]uint64{}
	for tgid, idx := range set.Tgids {
		proc, err := p.proc.Proc(int(tgid))
		if err != nil {
			continue // exited since the last refresh
		}
		if st, err := proc.Stat(); err == nil {
			perTarget[idx] += uint64(st.MajFlt)
		}
	}
	for i, t := range p.cfg.Targets {
		if t.Process != "" && set.Found[i] {
			ch <- prometheus.MustNewConstMetric(majorDesc, prometheus.CounterValue, float64(perTarget[uint32(i)]), t.Name)
		}
	}
}

func readMajorFaults(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseMajorFaults(f)
}

// parseMajorFaults finds pgmajfault in /proc/vmstat.
func parseMajorFaults(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != "pgmajfault" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("vmstat: pgmajfault: %w", err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("vmstat: %w", err)
	}
	return 0, fmt.Errorf("vmstat: no pgmajfault line")
}
