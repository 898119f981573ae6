package journal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// counter returns steps that count their runs in calls.
func counter(calls map[string]int, names ...string) []Step {
	var steps []Step
	for _, n := range names {
		steps = append(steps, Step{Name: n, Do: func(context.Context) error { calls[n]++; return nil }})
	}
	return steps
}

func TestRunAndLoad(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	if err := j.Run(context.Background(), "a1", counter(calls, "drain", "stop")); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"drain": 1, "stop": 1}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
	r, err := j.Load("a1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Done || r.Steps[1].State != Done || r.Steps[1].Ended.IsZero() {
		t.Errorf("record %+v, want done with both steps done", r)
	}
	if err := j.Run(context.Background(), "a1", counter(calls, "drain")); !errors.Is(err, ErrExists) {
		t.Errorf("second Run: %v, want ErrExists", err)
	}
	if err := j.Forget("a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load("a1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Forget: %v, want ErrNotFound", err)
	}
}

// A step ended by ctx stays started and runs again on Resume; done steps do
// not.
func TestInterruptedStepRunsAgain(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := map[string]int{}
	steps := counter(calls, "one", "two", "three")
	steps[1].Do = func(ctx context.Context) error {
		calls["two"]++
		cancel()
		return ctx.Err()
	}
	if err := j.Run(ctx, "a2", steps); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	pending, err := j.Pending()
	if err != nil || len(pending) != 1 || pending[0].Steps[1].State != Started {
		t.Fatalf("Pending() = %+v, %v; want a2 with step two started", pending, err)
	}
	if err := j.Resume(context.Background(), "a2", counter(calls, "one", "two", "three")); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"one": 1, "two": 2, "three": 1}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}

func TestFailedStepFailsAction(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	steps := counter(calls, "one", "two", "three")
	steps[1].Do = func(context.Context) error { return errors.New("nodetool: connection refused") }
	if err := j.Run(context.Background(), "a3", steps); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Run: %v, want the step's error", err)
	}
	r, err := j.Load("a3")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Failed || r.Steps[1].State != Failed || r.Steps[2].State != Pending {
		t.Errorf("record %+v, want failed at step two", r)
	}
	if p, _ := j.Pending(); len(p) != 0 {
		t.Errorf("failed action is pending: %+v", p)
	}
	if err := j.Resume(context.Background(), "a3", steps); err == nil {
		t.Error("Resume of a failed action: nil error")
	}
	if calls["three"] != 0 {
		t.Error("step after the failed one ran")
	}
}

func TestResumeRefusesChangedSteps(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.Run(ctx, "a4", counter(map[string]int{}, "one", "two")); err == nil {
		t.Fatal("Run with a cancelled ctx: nil error")
	}
	for _, names := range [][]string{{"one"}, {"one", "three"}} {
		if err := j.Resume(context.Background(), "a4", counter(map[string]int{}, names...)); !errors.Is(err, ErrStepsChanged) {
			t.Errorf("Resume with %v: %v, want ErrStepsChanged", names, err)
		}
	}
}

func TestCorruptFileSetAside(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j.Run(ctx, "good", counter(map[string]int{}, "one")) // left pending
	for name, body := range map[string]string{
		"torn.json":    `{"version":1,"id":"torn","state":"runn`,
		"wrongid.json": `{"version":1,"id":"other","state":"done","steps":[{"name":"a","state":"done"}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := j.Pending()
	if len(pending) != 1 || pending[0].ID != "good" {
		t.Errorf("Pending() = %+v, want the good record despite the corrupt ones", pending)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "torn.json") || !strings.Contains(err.Error(), "wrongid.json") {
		t.Fatalf("Pending() error %v, want a CorruptError naming both files", err)
	}
	for _, name := range []string{"torn.json", "wrongid.json"} {
		if _, err := os.Stat(filepath.Join(dir, name+".corrupt")); err != nil {
			t.Errorf("%s not set aside: %v", name, err)
		}
	}
	if _, err := j.Pending(); err != nil {
		t.Errorf("second Pending(): %v, want the corrupt files gone", err)
	}
}

func TestOpenRemovesTemps(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".a5.json.tmp-123")
	if err := os.WriteFile(tmp, []byte(`{"half`), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp file still there: %v", err)
	}
	if p, err := j.Pending(); err != nil || len(p) != 0 {
		t.Errorf("Pending() = %v, %v; want nothing", p, err)
	}
}

func TestBadIDs(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("a", 129)} {
		if err := j.Run(context.Background(), id, counter(map[string]int{}, "one")); err == nil {
			t.Errorf("Run(%q): nil error", id)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"a","state":"running","steps":[{"name":"x","state":"done","runs":1},{"name":"y","state":"started","runs":2},{"name":"z","state":"pending"}]}`))
	f.Add([]byte(`{"version":1,"id":"a","state":"failed","error":"e","steps":[{"name":"x","state":"failed","runs":1}]}`))
	f.Add([]byte(`{"version":1,"id":"a","state":"done","steps":[{"name":"x","state":"done","runs":1,"started":"2025-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"version":1`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		// What parses must survive the write and read of a checkpoint.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal a parsed record: %v", err)
		}
		r2, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("reparse %s: %v", out, err)
		}
		if !reflect.DeepEqual(r.Steps, r2.Steps) || r.State != r2.State || r.ID != r2.ID {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, r2)
		}
	})
}
