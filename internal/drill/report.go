package drill

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report as a table, one drill a line, then why each
// failed drill failed.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DRILL\tEXPECTED\tREACHED\tSUBJECT\tACTION (advise)\tDETECTED IN\tRESULT")
	for _, res := range r.Results {
		reached, action, took := "-", "-", "-"
		if res.Reached != "" {
			reached = string(res.Reached)
		}
		if res.Action != "" {
			action = fmt.Sprintf("%s (rung %d, %s)", res.Action, res.Rung, res.Mode)
		}
		if res.Passed {
			took = res.TimeToDetect.Round(100 * time.Millisecond).String()
		}
		expected := string(res.Expected)
		if expected == "" {
			expected = "none (control)"
			took = "-"
		}
		for _, a := range res.AlsoExpected {
			expected += " + " + strings.SplitN(a, " ", 2)[0]
		}
		verdict := "ok"
		if !res.Passed {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.Drill, expected, reached, orDash(res.Subject), action, took, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		fmt.Fprintf(w, "\n%s: %s\n", res.Drill, orDash(res.Fault))
		if res.Error != "" {
			fmt.Fprintf(w, "  failed: %s\n", res.Error)
		}
		if len(res.AlsoExpected) > 0 {
			fmt.Fprintf(w, "  also expected: %v, reached: %v\n", res.AlsoExpected, res.AlsoReached)
		}
		if len(res.Entered) > 0 {
			fmt.Fprintf(w, "  entered: %v\n", res.Entered)
		}
		if res.Plan != nil {
			for _, e := range res.Plan.Diagnosis.Evidence {
				fmt.Fprintf(w, "  evidence: %s = %.4g %s (threshold %.4g, for %v)\n", e.Signal, e.Value, e.Unit, e.Threshold, e.For)
			}
		}
	}
	if len(r.Cleaned) > 0 {
		fmt.Fprintf(w, "\nremoved at start, left by an earlier run: %v\n", r.Cleaned)
	}
	verdict := "every diagnosis matched"
	if !r.Passed {
		verdict = "NOT every diagnosis matched"
	}
	_, err := fmt.Fprintf(w, "\n%s\n", verdict)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
