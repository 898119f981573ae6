// Package fio runs the fio I/O tester and reads its JSON report: the
// independent figure that tests, benchmarks and drills compare nerve's
// measurements against.
package fio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
)

// Latency is one latency distribution from fio, in nanoseconds.
type Latency struct {
	Mean        float64            `json:"mean"`
	Percentiles map[string]float64 `json:"percentile"`
}

// Percentile returns fio's figure for p (e.g. 50, 99), or false when fio did not report it.
func (l Latency) Percentile(p float64) (float64, bool) {
	for k, v := range l.Percentiles {
		f, err := strconv.ParseFloat(k, 64)
		if err == nil && f == p {
			return v, true
		}
	}
	return 0, false
}

// Direction is fio's report for reads or writes of one job.
type Direction struct {
	TotalIOs uint64  `json:"total_ios"`
	IOPS     float64 `json:"iops"`
	Bytes    uint64  `json:"io_bytes"`
	Clat     Latency `json:"clat_ns"`
	Lat      Latency `json:"lat_ns"`
}

// Job is one fio job's report.
type Job struct {
	Name  string    `json:"jobname"`
	Error int       `json:"error"`
	Read  Direction `json:"read"`
	Write Direction `json:"write"`
}

// Report is fio's JSON output.
type Report struct {
	Version string `json:"fio version"`
	Jobs    []Job  `json:"jobs"`
}

// TotalIOs sums completed reads and writes over all jobs.
func (r *Report) TotalIOs() (reads, writes uint64) {
	for _, j := range r.Jobs {
		reads += j.Read.TotalIOs
		writes += j.Write.TotalIOs
	}
	return reads, writes
}

// IOPS sums read and write IOPS over all jobs.
func (r *Report) IOPS() float64 {
	var n float64
	for _, j := range r.Jobs {
		n += j.Read.IOPS + j.Write.IOPS
	}
	return n
}

// Parse reads fio's JSON output. fio may print notices before the JSON
// document; they are skipped.
func Parse(out []byte) (*Report, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return nil, errors.New("fio report: no JSON object in output")
	}
	var r Report
	if err := json.Unmarshal(out[i:], &r); err != nil {
		return nil, fmt.Errorf("fio report: %w", err)
	}
	if len(r.Jobs) == 0 {
		return nil, errors.New("fio report: no jobs")
	}
	for _, j := range r.Jobs {
		if j.Error != 0 {
			return nil, fmt.Errorf("fio report: job %q failed with error %d", j.Name, j.Error)
		}
	}
	return &r, nil
}

// Run runs fio with args (the output format is forced to JSON) and parses
// its report. The context ends fio.
func Run(ctx context.Context, args ...string) (*Report, error) {
	args = append(append([]string{}, args...), "--output-format=json")
	cmd := exec.CommandContext(ctx, "fio", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("fio %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return Parse(out)
}
