package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors a caller may test with errors.Is.
var (
	// ErrExists means Run was given the id of an action already journaled:
	// Resume it, or Forget it first.
	ErrExists = errors.New("action already journaled")
	// ErrNotFound means there is no record for the id.
	ErrNotFound = errors.New("no such action")
	// ErrBusy means the action is being run by another call right now.
	ErrBusy = errors.New("action already running")
	// ErrStepsChanged means Resume was given steps that are not the ones
	// recorded: the agent's code changed across the crash, and guessing
	// which step is which would risk repeating one.
	ErrStepsChanged = errors.New("steps differ from the record")
)

// CorruptError is a journal file that does not parse. It has been set aside
// as Path+".corrupt" (unless that rename failed too, see Err).
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal file %s is corrupt, set aside as %s.corrupt: %v", e.Path, e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Step is one idempotent part of an action: running it again after a crash
// inside it, or right after it, must be safe.
type Step struct {
	Name string
	Do   func(ctx context.Context) error
}

// Journal runs actions and keeps their records in one directory.
type Journal struct {
	dir string
	now func() time.Time

	mu      sync.Mutex
	running map[string]bool // ids in Run or Resume; guarded by mu

	// afterWrite, when set (by tests), is called after each durable
	// checkpoint: it is where the crash test kills the process.
	afterWrite func()
}

// Open returns the journal kept in dir, creating dir if needed, and removes
// the temporary files a crash mid-checkpoint left (the checkpoint before it
// is intact). Only one process may use a directory at a time.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{dir: dir, now: time.Now, running: map[string]bool{}}, nil
}

// Run journals a new action and runs its steps in order, stopping at the
// first that fails. A failed step fails the action for good; a step ended by
// ctx is left started, to be run again by Resume.
func (j *Journal) Run(ctx context.Context, id string, steps []Step) error {
	if err := checkSteps(id, steps); err != nil {
		return err
	}
	if err := j.claim(id); err != nil {
		return err
	}
	defer j.unclaim(id)
	if _, err := os.Lstat(j.path(id)); err == nil {
		return fmt.Errorf("run %s: %w", id, ErrExists)
	}
	now := j.now().UTC()
	r := Record{Version: version, ID: id, State: Running, Created: now, Updated: now}
	for _, s := range steps {
		r.Steps = append(r.Steps, StepRecord{Name: s.Name, State: Pending})
	}
	if err := j.write(&r); err != nil {
		return err
	}
	return j.run(ctx, &r, steps)
}

// Resume continues an interrupted action: it skips the steps recorded done
// and runs the rest, starting with the one that was in flight. A finished
// action is not run again: Resume returns nil for one done and its error for
// one failed.
func (j *Journal) Resume(ctx context.Context, id string, steps []Step) error {
	if err := checkSteps(id, steps); err != nil {
		return err
	}
	if err := j.claim(id); err != nil {
		return err
	}
	defer j.unclaim(id)
	r, err := j.Load(id)
	if err != nil {
		return err
	}
	if len(r.Steps) != len(steps) {
		return fmt.Errorf("resume %s: %d steps, the record has %d: %w", id, len(steps), len(r.Steps), ErrStepsChanged)
	}
	for i, s := range steps {
		if s.Name != r.Steps[i].Name {
			return fmt.Errorf("resume %s: step %d is %q, the record has %q: %w", id, i, s.Name, r.Steps[i].Name, ErrStepsChanged)
		}
	}
	switch r.State {
	case Done:
		return nil
	case Failed:
		return fmt.Errorf("action %s failed earlier: %s", id, r.Error)
	}
	return j.run(ctx, &r, steps)
}

// run carries out the steps not yet done, checkpointing before and after
// each one.
func (j *Journal) run(ctx context.Context, r *Record, steps []Step) error {
	for i, s := range steps {
		sr := &r.Steps[i]
		if sr.State == Done {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("action %s before step %s: %w", r.ID, s.Name, err)
		}
		sr.State, sr.Runs, sr.Started, sr.Ended, sr.Error = Started, sr.Runs+1, j.now().UTC(), time.Time{}, ""
		if err := j.write(r); err != nil {
			return err
		}
		err := s.Do(ctx)
		if err != nil && ctx.Err() != nil {
			// Interrupted, not failed: the record still says started.
			return fmt.Errorf("action %s step %s interrupted: %w", r.ID, s.Name, err)
		}
		sr.Ended = j.now().UTC()
		if err != nil {
			sr.State, sr.Error = Failed, err.Error()
			r.State, r.Error = Failed, fmt.Sprintf("step %s: %v", s.Name, err)
			if werr := j.write(r); werr != nil {
				return errors.Join(fmt.Errorf("action %s step %s: %w", r.ID, s.Name, err), werr)
			}
			return fmt.Errorf("action %s step %s: %w", r.ID, s.Name, err)
		}
		sr.State = Done
		if i == len(steps)-1 {
			r.State = Done
		}
		if err := j.write(r); err != nil {
			return err
		}
	}
	return nil
}

// Load reads one action's record. A corrupt file is set aside and reported
// as a *CorruptError.
func (j *Journal) Load(id string) (Record, error) {
	if err := checkID(id); err != nil {
		return Record{}, err
	}
	return j.load(j.path(id))
}

// Pending lists the actions interrupted before they finished, oldest first,
// for Resume. Corrupt files are set aside and reported together in the
// error, as *CorruptError values; the records that could be read are
// returned even then, so that one bad file does not stall the others.
func (j *Journal) Pending() ([]Record, error) {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("list journal: %w", err)
	}
	var recs []Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || IsTemp(name) || !strings.HasSuffix(name, ".json") {
			continue
		}
		r, err := j.load(filepath.Join(j.dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.State == Running {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return recs, errors.Join(errs...)
}

// Forget removes a finished action's record, once its outcome is kept
// elsewhere (the decision report). Forgetting an unknown id is not an error.
func (j *Journal) Forget(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := j.claim(id); err != nil {
		return err
	}
	defer j.unclaim(id)
	if err := os.Remove(j.path(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("forget %s: %w", id, err)
	}
	return syncDir(j.dir)
}

func (j *Journal) load(path string) (Record, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Record{}, fmt.Errorf("load %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("load %s: %w", path, err)
	}
	r, err := ParseRecord(data)
	if err == nil && r.ID+".json" != filepath.Base(path) {
		err = fmt.Errorf("record id %q does not match the file name", r.ID)
	}
	if err != nil {
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Record{}, &CorruptError{Path: path, Err: err}
	}
	return r, nil
}

func (j *Journal) write(r *Record) error {
	r.Updated = j.now().UTC()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", r.ID, err)
	}
	if err := WriteAtomic(j.path(r.ID), append(data, '\n')); err != nil {
		return fmt.Errorf("checkpoint %s: %w", r.ID, err)
	}
	if j.afterWrite != nil {
		j.afterWrite()
	}
	return nil
}

func (j *Journal) path(id string) string { return filepath.Join(j.dir, id+".json") }

func (j *Journal) claim(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running[id] {
		return fmt.Errorf("action %s: %w", id, ErrBusy)
	}
	j.running[id] = true
	return nil
}

func (j *Journal) unclaim(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.running, id)
}

func checkSteps(id string, steps []Step) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("action %s has no steps", id)
	}
	for i, s := range steps {
		if s.Name == "" || s.Do == nil {
			return fmt.Errorf("action %s step %d: want a name and a function", id, i)
		}
	}
	return nil
}
