package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
)

// supervisor restarts a JVM when it dies, as systemd's Restart=always would.
type supervisor struct {
	mu   sync.Mutex
	pids []int
	stop bool
}

func (s *supervisor) run(t *testing.T, cgroupDir, classes string) {
	for {
		s.mu.Lock()
		if s.stop {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec java -Xmx64m -cp "$2" HeapThrash 0`, "sh", cgroupDir, classes)
		if err := cmd.Start(); err != nil {
			t.Errorf("start JVM: %v", err)
			return
		}
		s.mu.Lock()
		s.pids = append(s.pids, cmd.Process.Pid)
		s.mu.Unlock()
		cmd.Wait()
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *supervisor) started() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.pids...)
}

func (s *supervisor) shutdown() {
	s.mu.Lock()
	s.stop = true
	pids := append([]int(nil), s.pids...)
	s.mu.Unlock()
	for _, p := range pids {
		if proc, err := os.FindProcess(p); err == nil {
			proc.Kill()
		}
	}
}

// A JVM in a GC spiral is diagnosed as a query of death; nerve dumps it,
// kills it under the rack lock, the restart policy brings it back, and the
// decision report tells all of it.
func TestQueryOfDeathIsHealed(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "java", "javac", "jcmd", "go")
	bin := nervetest.Binary(t)
	classes := t.TempDir()
	javatest.Compile(t, classes, "HeapThrash.java")
	rel, cgdir := privtest.Cgroup(t)

	state := t.TempDir()
	dumps := filepath.Join(state, "dumps")
	cfg := filepath.Join(t.TempDir(), "nerve.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
probes:
  blockio: {enabled: false}
  runqueue: {enabled: false}
  pagefault: {enabled: false}
  jvm:
    enabled: true
    thrash: {threshold: 3s, weight: 5}
targets:
  - name: db
    cgroup: %s
actuator:
  enabled: true
  tick: 1s
  state_dir: %s
  dump_dir: %s
  target: db
  lock: local
  rungs: {1: enforce, 2: enforce, 3: enforce, 4: advise, 5: advise}
`, rel, state, dumps)), 0o644); err != nil {
		t.Fatal(err)
	}

	sup := &supervisor{}
	go sup.run(t, cgdir, classes)
	defer sup.shutdown()
	a := startAgent(t, bin, "--config.file="+cfg)

	var done report.Decision
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && done.ID == "" {
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ds, err := report.Fetch(ctx, a.addr, 50)
		cancel()
		if err != nil {
			t.Fatalf("decisions: %v", err)
		}
		for _, d := range ds {
			if d.Plan.Diagnosis.Kind == actuator.QueryOfDeath && d.Outcome == "done" {
				done = d
				break
			}
		}
	}
	if done.ID == "" {
		t.Fatalf("no query_of_death healed within 90s; JVMs started: %v", sup.started())
	}
	txt := report.Text(done)
	t.Logf("decision report:\n%s", txt)

	first := sup.started()[0]
	if !strings.Contains(done.Plan.Diagnosis.Subject, fmt.Sprintf("pid %d", first)) {
		t.Errorf("diagnosed %q, want the first JVM (pid %d)", done.Plan.Diagnosis.Subject, first)
	}
	if done.Plan.Action.Name != "jvmquake" || done.Plan.Rung != actuator.RestartDatabase {
		t.Errorf("action %s at rung %d, want jvmquake at rung 3", done.Plan.Action.Name, done.Plan.Rung)
	}
	if done.LockToken == 0 {
		t.Error("no fencing token: the kill did not hold the rack lock")
	}
	if len(done.Plan.Diagnosis.Evidence) == 0 {
		t.Error("no evidence in the report")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", first)); err == nil {
		t.Errorf("JVM %d still alive after the kill", first)
	}
	dumpsFound, _ := filepath.Glob(filepath.Join(dumps, "*"))
	if len(dumpsFound) == 0 {
		t.Errorf("no dump in %s", dumps)
	}
	for _, f := range dumpsFound {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("dump %s is empty", f)
		}
	}
	// The restart policy brought the JVM back.
	back := false
	for i := 0; i < 50 && !back; i++ {
		pids := sup.started()
		if len(pids) > 1 {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pids[len(pids)-1]))
			back = err == nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !back {
		t.Errorf("the JVM did not come back: started %v", sup.started())
	}
	for _, want := range []string{"query_of_death", "jvmquake", "done"} {
		if !strings.Contains(txt, want) {
			t.Errorf("report text lacks %q", want)
		}
	}
}
