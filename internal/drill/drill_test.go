package drill

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The drills start their helpers by running the test binary again.
func TestMain(m *testing.M) {
	RunHelper()
	os.Exit(m.Run())
}

func TestExpand(t *testing.T) {
	for _, tt := range []struct {
		in      []string
		want    int
		wantErr bool
	}{
		{[]string{"all"}, len(Names), false},
		{[]string{"slow-disk", "cpu-overload"}, 2, false},
		{[]string{"no-such"}, 0, true},
		{nil, 0, true},
	} {
		got, err := Expand(tt.in)
		if (err != nil) != tt.wantErr || len(got) != tt.want {
			t.Errorf("Expand(%v) = %v, %v; want %d drills, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDrillGoalsValid(t *testing.T) {
	if err := DrillGoals().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DrillThrash.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A scratch directory whose owner is alive is not touched.
func TestCleanupRefusesLiveOwner(t *testing.T) {
	dir := t.TempDir()
	// The parent of the test binary (go test) is alive and is not us.
	owner := os.Getppid()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(procLine(owner, startTime(owner))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CleanupLeftovers(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("CleanupLeftovers with a live owner: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("scratch removed while its owner is alive: %v", err)
	}
}

// A recorded pid whose start time does not match is another process: left alone.
func TestAliveChecksStartTime(t *testing.T) {
	me := os.Getpid()
	if !alive(me, startTime(me)) {
		t.Fatal("this process is not alive by its own start time")
	}
	if alive(me, startTime(me)+1) {
		t.Fatal("a pid with another start time counts as the recorded process")
	}
	if pid, st, ok := parseProc(strconv.Itoa(me) + " 42"); !ok || pid != me || st != 42 {
		t.Fatalf("parseProc = %d, %d, %v", pid, st, ok)
	}
}
