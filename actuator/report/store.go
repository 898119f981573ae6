package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/ladder"
)

// DefaultKeep is how many decisions a Store keeps when Open is given 0.
const DefaultKeep = 500

// ErrNotFound means no decision has the id.
var ErrNotFound = errors.New("no such decision")

// Decision is one decision of the actuator, as kept and shown. The plan's
// fields (Diagnosis, Action, Rung, Mode, Considered, NeedsLock, Act,
// WaitUntil) are promoted from the embedded ladder.Plan.
type Decision struct {
	// ID is unique per diagnosis and instant: the time, the diagnosis and
	// its subject, safe as a file name.
	ID string `json:"id"`
	// At is when the decision was made.
	At time.Time `json:"at"`
	ladder.Plan
	// Context is what the node looked like when the decision was made: CPU
	// use, PSI, memory, IOPS.
	Context   map[string]float64 `json:"context,omitempty"`
	LockToken uint64             `json:"lock_token,omitempty"` // 0: no rack lock held
	// Steps are the action's steps in order, as the journal recorded
	// them; none when nothing was carried out.
	Steps []journal.StepRecord `json:"steps,omitempty"`
	// Outcome: "advised", "observed", "done", "failed: ...",
	// "refused: rate limited", ...
	Outcome string `json:"outcome"`
	// Bundle is the file with the flight recorder's outliers around the
	// diagnosis, summarised and raw, written before this report was
	// first saved; "" when the recorder is off or the bundle could not be
	// written (the agent's log says why).
	Bundle string `json:"bundle,omitempty"`
}

// File names are <at>_<id>.json, at in UTC with a fixed width, so the
// names sort by time.
const (
	stampLayout = "20060102T150405.000000000Z"
	fileSuffix  = ".json"
)

func fileName(d Decision) string {
	return d.At.UTC().Format(stampLayout) + "_" + d.ID + fileSuffix
}

// parseName returns the time and the id a file name holds.
func parseName(name string) (time.Time, string, bool) {
	n := len(stampLayout)
	if len(name) <= n+1+len(fileSuffix) || name[n] != '_' || !strings.HasSuffix(name, fileSuffix) {
		return time.Time{}, "", false
	}
	at, err := time.Parse(stampLayout, name[:n])
	if err != nil {
		return time.Time{}, "", false
	}
	return at, strings.TrimSuffix(name[n+1:], fileSuffix), true
}

// Store keeps decisions in a directory. It is safe for concurrent use by
// one process; only one process may use a directory.
type Store struct {
	dir    string
	keep   int
	logger *slog.Logger

	mu sync.Mutex // serializes Save's write and pruning
}

// Option changes how Open sets up a Store.
type Option func(*Store)

// WithLogger sets where a Store logs the files it skips; the default is
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.logger = l } }

// Open returns the store kept in dir, creating dir if needed, keeping the
// last keep decisions (DefaultKeep for 0). It removes the temporary files a
// crash in the middle of a Save left behind.
func Open(dir string, keep int, opts ...Option) (*Store, error) {
	if keep < 0 {
		return nil, fmt.Errorf("open decisions: keep %d, want >= 0", keep)
	}
	if keep == 0 {
		keep = DefaultKeep
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open decisions: %w", err)
	}
	if err := journal.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("open decisions: %w", err)
	}
	s := &Store{dir: dir, keep: keep, logger: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	s.logger = s.logger.With("dir", dir)
	return s, nil
}

// Save writes d atomically, replacing any decision with the same ID, and
// drops the oldest decisions beyond the bound.
func (s *Store) Save(d Decision) error {
	if err := checkID(d.ID); err != nil {
		return fmt.Errorf("save decision: %w", err)
	}
	if d.At.IsZero() {
		return fmt.Errorf("save decision %s: no time", d.ID)
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("save decision %s: %w", d.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := fileName(d)
	if err := journal.WriteAtomic(filepath.Join(s.dir, name), append(data, '\n')); err != nil {
		return fmt.Errorf("save decision %s: %w", d.ID, err)
	}
	names, err := s.names()
	if err != nil {
		return fmt.Errorf("save decision %s: %w", d.ID, err)
	}
	var errs []error
	for i, n := range names {
		_, id, _ := parseName(n)
		if (id == d.ID && n != name) || i < len(names)-s.keep {
			if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("save decision %s: prune: %w", d.ID, err)
	}
	return nil
}

// List returns the decisions made at or after since, newest first, at most
// limit of them (all for limit <= 0). Files that do not parse are skipped
// and logged.
func (s *Store) List(since time.Time, limit int) ([]Decision, error) {
	names, err := s.names()
	if err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	out := []Decision{}
	for _, n := range slices.Backward(names) {
		if at, _, _ := parseName(n); at.Before(since) {
			break
		}
		if limit > 0 && len(out) == limit {
			break
		}
		d, err := s.read(n)
		if err != nil {
			s.logger.Error("skip decision file", "file", n, "err", err)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// Get returns the decision with the id.
func (s *Store) Get(id string) (Decision, error) {
	if checkID(id) != nil {
		return Decision{}, fmt.Errorf("decision %q: %w", id, ErrNotFound)
	}
	names, err := s.names()
	if err != nil {
		return Decision{}, fmt.Errorf("get decision %s: %w", id, err)
	}
	for _, n := range slices.Backward(names) {
		if _, nid, _ := parseName(n); nid == id {
			d, err := s.read(n)
			if err != nil {
				return Decision{}, fmt.Errorf("get decision %s: %w", id, err)
			}
			return d, nil
		}
	}
	return Decision{}, fmt.Errorf("decision %s: %w", id, ErrNotFound)
}

// names lists the decision files, oldest first; temporary and foreign files
// are left out.
func (s *Store) names() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if _, _, ok := parseName(e.Name()); ok && e.Type().IsRegular() && !journal.IsTemp(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // ReadDir sorts already; the bound depends on it
	return names, nil
}

func (s *Store) read(name string) (Decision, error) {
	path := filepath.Join(s.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return Decision{}, fmt.Errorf("decode %s: %w", path, err)
	}
	if _, id, _ := parseName(name); d.ID != id {
		return Decision{}, fmt.Errorf("decode %s: id %q does not match the file name", path, d.ID)
	}
	return d, nil
}

// checkID keeps decision ids usable in file names.
func checkID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("id %q: want 1 to 128 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("id %q: want letters, digits, '-', '_' or '.'", id)
		}
	}
	return nil
}
