package benchkit

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
)

// Machine is "kernel <release>, <n> CPUs", for a report's heading.
func Machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("kernel %s, %d CPUs", strings.TrimSpace(string(kernel)), runtime.NumCPU())
}

// Spread is (max - min) / median of the rounds' figures all, in percent, or
// "-" when there is only one round or the median is not positive.
func Spread(all []float64, median float64) string {
	if len(all) > 1 && median > 0 {
		return fmt.Sprintf("%.0f", 100*(slices.Max(all)-slices.Min(all))/median)
	}
	return "-"
}

// TotalRuns is the runs of all the programs together.
func TotalRuns(ds []ProgDelta) uint64 {
	var n uint64
	for _, d := range ds {
		n += d.Runs
	}
	return n
}

// ProgramRows writes a table row for each program of runs, summed over them
// (SumByProgram): the cells in lead (each ending with a tab), then the
// program's name, runs, runs per event (runs / events; events of 0 count as
// 1) and ns per run ("-" for a program that never ran).
func ProgramRows(tw io.Writer, lead string, runs [][]ProgDelta, events uint64) {
	for _, s := range SumByProgram(runs) {
		nsRun := "-"
		if s.Runs > 0 {
			nsRun = fmt.Sprintf("%.0f", float64(s.Ns)/float64(s.Runs))
		}
		fmt.Fprintf(tw, "%s%s\t%d\t%.2f\t%s\t\n", lead, s.Name, s.Runs, float64(s.Runs)/float64(max(events, 1)), nsRun)
	}
}
