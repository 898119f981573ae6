package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nervehq/nerve/internal/config"
)

// A bad goals file on reload is named in the log and the goals in force
// stay; a good one is taken.
func TestGoalsReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	goalsFile := filepath.Join(dir, "goals.yaml")
	if err := os.WriteFile(goalsFile, []byte("disk:\n  service_idle_p99: {enter: 40ms, exit: 20ms}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Actuator.StateDir = dir
	cfg.Actuator.GoalsFile = goalsFile
	var logs bytes.Buffer
	a := &agent{logger: slog.New(slog.NewTextHandler(&logs, nil)), probes: &probeSet{}}
	a.flight = newFlight(a.logger, cfg) // thresholds from the goals: 20ms for block service
	act, err := a.newActuator(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.act = act

	for _, bad := range []string{
		"disk:\n  service_idle_p99: {enter: 40ms, exit: 80ms}\n", // exit above enter
		"disk:\n  sevice_idle_p99: {enter: 40ms}\n",              // unknown field
		"cpu:\n  runqueue_p99: {enter: -5ms}\n",                  // negative
		"{{{",
	} {
		logs.Reset()
		os.WriteFile(goalsFile, []byte(bad), 0o644)
		if a.reloadGoals() {
			t.Errorf("bad goals %q: reloadGoals says they were taken", bad)
		}
		if !strings.Contains(logs.String(), "goals reload failed; keeping the goals in force") || !strings.Contains(logs.String(), goalsFile) {
			t.Errorf("bad goals %q: log does not say so, naming the file:\n%s", bad, logs.String())
		}
	}
	logs.Reset()
	os.WriteFile(goalsFile, []byte("disk:\n  service_idle_p99: {enter: 60ms, exit: 30ms}\n"), 0o644)
	if !a.reloadGoals() || !strings.Contains(logs.String(), "goals reloaded") {
		t.Errorf("good goals not reloaded:\n%s", logs.String())
	}
	// The outlier threshold they move is a constant of the loaded programs.
	if !strings.Contains(logs.String(), "take effect at the next start") || !strings.Contains(logs.String(), "blockio_service=30ms") {
		t.Errorf("no word that the block service threshold moves to 30ms at the next start:\n%s", logs.String())
	}
	// Back to the goals the agent started with: the thresholds in force are theirs.
	logs.Reset()
	os.WriteFile(goalsFile, []byte("disk:\n  service_idle_p99: {enter: 40ms, exit: 20ms}\n"), 0o644)
	if !a.reloadGoals() || strings.Contains(logs.String(), "next start") {
		t.Errorf("the start-up goals said to move thresholds:\n%s", logs.String())
	}
}

// A goals file that does not load stops the agent at start, with the field named.
func TestBadGoalsFailStart(t *testing.T) {
	dir := t.TempDir()
	goalsFile := filepath.Join(dir, "goals.yaml")
	os.WriteFile(goalsFile, []byte("jvm:\n  stopped_fraction: {enter: 1.5}\n"), 0o644)
	cfg := config.Default()
	cfg.Actuator.StateDir = dir
	cfg.Actuator.GoalsFile = goalsFile
	a := &agent{logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), probes: &probeSet{}}
	_, err := a.newActuator(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "jvm.stopped_fraction") {
		t.Errorf("error %v, want one naming jvm.stopped_fraction", err)
	}
}
