package actions

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/systemdtest"
)

const (
	sleepUnit  = "nerve-test-sleep.service"
	brokenUnit = "nerve-test-broken.service"
)

// TestSystemdRestartUserManager restarts a real service in a real systemd
// (a user manager; see systemdtest) and checks the PIDs Run reports against
// /proc.
func TestSystemdRestartUserManager(t *testing.T) {
	m := systemdtest.Start(t, map[string]string{
		// Type=exec: the start job is done once the program runs, so MainPID
		// is set when the job result arrives.
		sleepUnit:  "[Service]\nType=exec\nExecStart=/bin/sleep infinity\n",
		brokenUnit: "[Service]\nType=exec\nExecStart=/nonexistent/nerve-test-program\n",
	})
	m.StartUnit(t, sleepUnit)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := NewUserSystemdRestart(sleepUnit, m.BusAddress).Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("restart: %+v", res)
	if res.JobResult != "done" {
		t.Errorf("job result = %q, want done", res.JobResult)
	}
	if res.MainPIDBefore == 0 || res.MainPIDAfter == 0 || res.MainPIDBefore == res.MainPIDAfter {
		t.Fatalf("MainPID before %d, after %d: want two different running processes", res.MainPIDBefore, res.MainPIDAfter)
	}
	// Independently of systemd: the new PID is a sleep, the old one is gone.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(int(res.MainPIDAfter)) + "/cmdline")
	if err != nil || !strings.HasPrefix(string(cmdline), "/bin/sleep\x00infinity") {
		t.Errorf("pid %d after the restart: cmdline %q, %v; want /bin/sleep infinity", res.MainPIDAfter, cmdline, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(int(res.MainPIDBefore))); err == nil {
		t.Errorf("pid %d before the restart still exists", res.MainPIDBefore)
	}

	tests := []struct {
		unit     string
		contains string
	}{
		{brokenUnit, `"failed"`},
		{"nerve-test-none.service", "not found"},
	}
	for _, tt := range tests {
		_, err := NewUserSystemdRestart(tt.unit, m.BusAddress).Run(ctx)
		if err == nil || !strings.Contains(err.Error(), tt.contains) || !strings.Contains(err.Error(), tt.unit) {
			t.Errorf("Run(%s) = %v, want an error naming the unit and containing %s", tt.unit, err, tt.contains)
		}
	}
}

func TestSystemdRestartNoBus(t *testing.T) {
	_, err := NewUserSystemdRestart(sleepUnit, "unix:path=/nonexistent/bus").Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connect to systemd") {
		t.Errorf("Run = %v, want a connect error", err)
	}
	if _, err := NewSystemdRestart("").Run(context.Background()); err == nil {
		t.Error("Run with no unit succeeded")
	}
}
