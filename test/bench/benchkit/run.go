package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
)

// RestoreOrLog is Restore for a deferred call at the end of a benchmark,
// which logs the error since there is no one to return it to. Every run
// restores the old value itself; this covers errors and signals.
func (s *BPFStats) RestoreOrLog() {
	if err := s.Restore(); err != nil {
		log.Print(err)
	}
}

// MeasureUnder runs load once under the tracer start starts, with
// kernel.bpf_stats_enabled on for the run, and returns what each of the
// tracer's programs did while load ran (Tracer.Measure). The tracer is
// stopped, and the statistics put back, before it returns.
func (s *BPFStats) MeasureUnder(ctx context.Context, start func() (*Tracer, error), verbose bool, load func() error) ([]ProgDelta, error) {
	if err := s.Enable(); err != nil {
		return nil, err
	}
	defer s.Restore()

	t, err := start()
	if err != nil {
		return nil, err
	}
	defer t.Stop()

	progs, err := t.Measure(ctx, load)
	if err != nil {
		return nil, err
	}
	t.Finish(verbose)
	return progs, nil
}

// Finish stops the tracer after a run that worked. With verbose, it logs a
// failed stop and prints the tracer's whole output on stderr; without, a
// failed stop does not matter once the figures are read.
func (t *Tracer) Finish(verbose bool) {
	if err := t.Stop(); err != nil && verbose {
		log.Printf("%s: stop: %v", t.Name, err)
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "--- %s output ---\n%s\n", t.Name, t.Output())
	}
}

// Rounds runs a benchmark's cases (a mode, or a load in a mode) a number of
// rounds, each case once a round, so that a drift of the machine over time
// spreads over every case rather than landing on one.
type Rounds[K comparable, R any] struct {
	Count int
	// Order lists the cases of a round in the order they run; Rotate turns
	// the list each round. Order(0) is also the order LogFailed logs in.
	Order func(round int) []K
	// Run runs one case once.
	Run func(round int, k K) (R, error)
	// Name names a case in the log line of a failed run; nil prints it
	// with %v.
	Name func(k K) string
	// Done is the log line of a run that worked, after "round i/n ".
	Done func(k K, r R) string
}

// Do runs every case of every round, but no more a case that failed once,
// and logs each run. It returns the results of the runs that worked and why
// each failed case failed, by case; or, having logged "interrupted", ctx's
// error when ctx ended.
func (rs Rounds[K, R]) Do(ctx context.Context) (results map[K][]R, failed map[K]error, err error) {
	results, failed = map[K][]R{}, map[K]error{}
	for r := range rs.Count {
		for _, k := range rs.Order(r) {
			if failed[k] != nil {
				continue
			}
			res, err := rs.Run(r, k)
			if ctx.Err() != nil {
				log.Print("interrupted")
				return nil, nil, ctx.Err()
			}
			if err != nil {
				log.Printf("round %d/%d %s: %v", r+1, rs.Count, name(rs.Name, k), err)
				failed[k] = err
				continue
			}
			log.Printf("round %d/%d %s", r+1, rs.Count, rs.Done(k, res))
			results[k] = append(results[k], res)
		}
	}
	return results, failed, nil
}

// LogFailed logs why each failed case could not run, naming a case as
// caseName does (nil prints it with %v), and reports whether any failed.
func (rs Rounds[K, R]) LogFailed(failed map[K]error, caseName func(K) string) bool {
	for _, k := range rs.Order(0) {
		if err := failed[k]; err != nil {
			log.Printf("%s could not run: %v", name(caseName, k), err)
		}
	}
	return len(failed) > 0
}

func name[K any](f func(K) string, k K) string {
	if f == nil {
		return fmt.Sprint(k)
	}
	return f(k)
}

// Rotate is s starting at its element n (modulo its length) and wrapping
// around, in a new slice: the order of the cases in round n.
func Rotate[T any](s []T, n int) []T {
	out := make([]T, len(s))
	for i := range s {
		out[i] = s[(i+n)%len(s)]
	}
	return out
}

// CombinedOutput runs cmd and returns its stdout and stderr together. Its
// error names the program and ends with the end of what it printed.
func CombinedOutput(cmd *exec.Cmd) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", cmd.Args[0], err, OneLine(out.String(), 300))
	}
	return out.String(), nil
}

// OneLine squeezes s onto one line of at most n bytes, keeping its end, where
// tools print why they failed.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
