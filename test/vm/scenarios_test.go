package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/drill"
	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
)

// runDrill runs `nerve drill names... --json` and decodes its report. The
// exit status is not checked here: the report says what passed.
func runDrill(t *testing.T, bin string, names ...string) drill.Report {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, append(append([]string{"drill"}, names...), "--json", "--scratch", filepath.Join(t.TempDir(), "drill"))...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var rep drill.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("nerve drill %v: %v; no JSON report (%v)\nstdout:\n%s\nstderr:\n%s", names, err, jerr, out.String(), errOut.String())
	}
	if rep.Passed != (err == nil) {
		t.Errorf("nerve drill %v: report passed=%v but exit %v", names, rep.Passed, err)
	}
	return rep
}

// Every scenario, run as an operator runs it (the real binary): the five
// drills each reach their diagnosis, the control reaches none, and each
// mixed case reaches the right diagnosis on each subject and never the
// misleading one.
func TestScenarios(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "java", "go")
	bin := nervetest.Binary(t)
	rep := runDrill(t, bin, "scenarios")
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("nerve drill scenarios:\n%s", text.String())
	if got, want := len(rep.Results), len(drill.Scenarios); got != want {
		t.Fatalf("%d results, want %d (one per scenario)", got, want)
	}
	for _, r := range rep.Results {
		if !r.Passed {
			t.Errorf("%s: %s", r.Drill, r.Error)
			continue
		}
		switch {
		case r.Expected == "":
			if len(r.Entered) != 0 {
				t.Errorf("control %s: diagnoses entered: %v", r.Drill, r.Entered)
			}
		default:
			if r.Reached != r.Expected {
				t.Errorf("%s: reached %q, want %q", r.Drill, r.Reached, r.Expected)
			}
			if len(r.AlsoReached) != len(r.AlsoExpected) {
				t.Errorf("%s: also reached %v, want %v", r.Drill, r.AlsoReached, r.AlsoExpected)
			}
			if r.Mode != "advise" || r.Action == "" {
				t.Errorf("%s: action %q in mode %q, want one in advise mode", r.Drill, r.Action, r.Mode)
			}
		}
		if r.Drill == "slow-disk" && !(r.TimeToDetect > 0 && r.TimeToDetect < 10*time.Second) {
			t.Errorf("slow-disk detected in %v, want under 10s", r.TimeToDetect)
		}
	}
}

// The control run against the agent itself, as operators run it, with its
// actuator enforcing the lower rungs and goals as quick as the drills': a
// busy, healthy machine gets no diagnosis and no action at all, in the
// metrics or in the decision reports.
func TestHealthyBusyGetsNoAction(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "losetup", "go")
	bin := nervetest.Binary(t)
	dir := t.TempDir()
	goalsFile := filepath.Join(dir, "goals.yaml")
	quick := "{for: 1s, clear_for: 1s}"
	if err := os.WriteFile(goalsFile, []byte(fmt.Sprintf(`
disk: {service_idle_p99: %[1]s, queue_p99: %[1]s}
cpu: {runqueue_p99: %[1]s}
memory: {pagefault_stall_p99: %[1]s}
jvm: {stopped_fraction: %[1]s}
`, quick)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "nerve.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
probes:
  jvm:
    thrash: {threshold: 2s, weight: 5}
actuator:
  enabled: true
  tick: 2s
  state_dir: %s
  goals_file: %s
  lock: local
  rungs: {1: enforce, 2: enforce, 3: enforce, 4: advise, 5: advise}
`, filepath.Join(dir, "state"), goalsFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, bin, "--config.file="+cfg)

	// Watch the diagnosis gauges while the control runs: one that entered
	// and cleared between two looks still leaves a decision behind. Also
	// note the most JVMs the agent watched at once, to show it saw the load.
	stop := make(chan struct{})
	watched := make(chan []string, 1)
	jvms := 0.0
	reads := map[string]float64{} // by device
	readsRe := regexp.MustCompile(`^nerve_block_requests_total\{device="([^"]+)",op="read"\} (\S+)$`)
	go func() {
		var seen []string
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				watched <- seen
				return
			case <-tick.C:
				watching := 0.0
				for _, line := range strings.Split(a.scrapeQuiet(), "\n") {
					if strings.HasPrefix(line, "nerve_diagnosis{") && !strings.HasSuffix(line, " 0") {
						seen = append(seen, line)
					}
					var n float64
					if strings.HasPrefix(line, "nerve_jvm_watched{") {
						if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err == nil {
							watching += n
						}
					}
					if m := readsRe.FindStringSubmatch(line); m != nil {
						if _, err := fmt.Sscan(m[2], &n); err == nil {
							reads[m[1]] = max(reads[m[1]], n)
						}
					}
				}
				jvms = max(jvms, watching)
			}
		}
	}()
	rep := runDrill(t, bin, "healthy-busy")
	close(stop)
	seen := <-watched
	if len(rep.Results) != 1 || !rep.Results[0].Passed {
		t.Fatalf("the control did not pass under the drill's own rules: %+v", rep.Results)
	}
	t.Logf("control: %s", rep.Results[0].Fault)
	// The agent must have seen the control's load, or its silence proves
	// nothing: the drill's disk (named first in the fault) served I/O, and
	// the busy JVM was watched when java is installed.
	dev, _, _ := strings.Cut(strings.TrimPrefix(rep.Results[0].Fault, "healthy "), " ")
	t.Logf("the agent saw %v reads on %s and up to %v JVMs", reads[dev], dev, jvms)
	if n := reads[dev]; n < 100 {
		t.Errorf("the agent counted %v reads on %s during the control, want hundreds", n, dev)
	}
	if _, err := exec.LookPath("java"); err == nil && jvms < 1 {
		t.Error("the agent never watched the control's JVM")
	}
	if len(seen) > 0 {
		t.Errorf("the agent held diagnoses during the control: %v", seen)
	}
	// One tick more, so a diagnosis entering at the end is seen too.
	time.Sleep(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := report.Fetch(ctx, a.addr, 100)
	if err != nil {
		t.Fatalf("decisions: %v", err)
	}
	for _, d := range ds {
		t.Errorf("decision during the control: %s", report.Text(d))
	}
	body := a.scrape(t)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "nerve_actions_total{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("an action was counted during the control: %s", line)
		}
		if strings.HasPrefix(line, "nerve_diagnosis{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("a diagnosis holds after the control: %s", line)
		}
	}
	if !strings.Contains(body, `nerve_actions_total{action="none",result="no action left"} 0`) {
		t.Error("no zero nerve_actions_total series: alerts on increase() would miss the first decision")
	}
	if !strings.Contains(body, "nerve_diagnosis{") {
		t.Error("no nerve_diagnosis series: the actuator is not running, so the control proves nothing")
	}
}

// scrapeQuiet is scrape for a goroutine other than the test's: "" on error.
func (a *agent) scrapeQuiet() string {
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
