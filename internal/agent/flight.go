package agent

// The flight recorder in the agent: the Recorder the probes send their
// outliers to, the thresholds the goals give them, the bundle written with
// every decision, and the /incidents API.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
	"github.com/nervehq/nerve/actuator/journal"
	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/internal/httpjson"
	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/targets"
)

// maxBundles is how many bundles are kept: as many as decisions.
const maxBundles = report.DefaultKeep

// flightThresholds are the outlier thresholds in force, the zeros of
// flight.thresholds resolved from the goals.
type flightThresholds struct {
	BlockIOService, BlockIOQueue, RunQueue, PageFault, Safepoint time.Duration
}

// resolveThresholds fills the zero thresholds from the goals' exit levels:
// a figure above the exit level is one the rule does not call healthy.
func resolveThresholds(t config.FlightThresholds, g goals.Goals) flightThresholds {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return flightThresholds{
		BlockIOService: or(t.BlockIOService, g.Disk.ServiceIdleP99.Exit),
		BlockIOQueue:   or(t.BlockIOQueue, g.Disk.QueueP99.Exit),
		RunQueue:       or(t.RunQueue, g.CPU.RunQueueP99.Exit),
		PageFault:      or(t.PageFault, g.Memory.PageFaultStallP99.Exit),
		Safepoint:      or(t.Safepoint, config.DefaultSafepointOutlier),
	}
}

// goalsChanged tells the recorder of goals reloaded while it runs. The
// thresholds are constants of the loaded BPF programs, so goals that would
// move one take effect at the next start; the log says which and how.
func (f *flightRun) goalsChanged(g goals.Goals) {
	if f == nil || f.rec == nil {
		return
	}
	next := resolveThresholds(f.cfg.Thresholds, g)
	if next == f.thresholds {
		return
	}
	f.logger.Warn("the reloaded goals move outlier thresholds, which take effect at the next start",
		"in_force", f.thresholds.String(), "after_restart", next.String())
}

// String lists the thresholds as the start-up log does.
func (t flightThresholds) String() string {
	return fmt.Sprintf("blockio_service=%v blockio_queue=%v runqueue=%v pagefault=%v safepoint=%v",
		t.BlockIOService, t.BlockIOQueue, t.RunQueue, t.PageFault, t.Safepoint)
}

// flightRun is the agent's flight recorder. A nil *flightRun, or one with
// a nil rec (flight.enabled false), sends no outliers and writes no
// bundles; its methods are safe to call either way, and its routes answer
// that there is nothing.
type flightRun struct {
	rec        *flight.Recorder // nil when off
	cgroups    *flight.Resolver // nil when off or no cgroup2 mount
	cfg        config.Flight
	thresholds flightThresholds
	logger     *slog.Logger

	mu  sync.Mutex // guards dir, set once the actuator starts
	dir string     // where bundles are kept; "" without an actuator
}

// newFlight builds the recorder cfg asks for. The goals in force (the
// goals file, else the built-in goals) give the thresholds left at 0.
func newFlight(logger *slog.Logger, cfg *config.Config) *flightRun {
	f := &flightRun{cfg: cfg.Flight, logger: logger.With("component", "flight")}
	if !cfg.Flight.Enabled {
		f.logger.Info("flight recorder off")
		return f
	}
	g, err := loadGoals(cfg.Actuator.GoalsFile)
	if err != nil {
		// The actuator refuses to start on the same error when it is on;
		// the outliers need only levels, and the built-in ones will do.
		f.logger.Error("goals for the outlier thresholds; using the built-in goals", "err", err)
		g = goals.Default()
	}
	f.thresholds = resolveThresholds(cfg.Flight.Thresholds, g)
	rc := flight.Config{MaxEvents: cfg.Flight.MaxEvents, MaxAge: cfg.Flight.MaxAge}
	if root, err := targets.CgroupV2Root("/proc/self/mountinfo"); err == nil {
		f.cgroups = flight.NewResolver(root, "")
		rc.Cgroups = f.cgroups.Resolve
	}
	f.rec = flight.New(rc)
	t := f.thresholds
	f.logger.Info("flight recorder on", "max_events", rc.MaxEvents, "max_age", rc.MaxAge, "memory_bound_bytes", f.rec.MemoryBound(),
		"rate", cfg.Flight.Rate, "blockio_service", t.BlockIOService, "blockio_queue", t.BlockIOQueue,
		"runqueue", t.RunQueue, "pagefault", t.PageFault, "safepoint", t.Safepoint)
	return f
}

// sink is where a probe sends its outliers: nil (a nil interface, which
// turns the probe's outlier path off) when the recorder is off.
func (f *flightRun) sink() flight.Sink {
	if f == nil || f.rec == nil {
		return nil
	}
	return f.rec
}

// rate is the probes' per-CPU outlier rate.
func (f *flightRun) rate() int {
	if f == nil {
		return 0
	}
	return f.cfg.Rate
}

// limits are the thresholds in force; zero (the probes' own defaults)
// when off, which do not matter then.
func (f *flightRun) limits() flightThresholds {
	if f == nil {
		return flightThresholds{}
	}
	return f.thresholds
}

// addSource counts a probe's undelivered outliers under its signal.
func (f *flightRun) addSource(s flight.Signal, drops func() flight.Drops) {
	if f == nil || f.rec == nil {
		return
	}
	f.rec.AddSource(s, drops)
}

// Describe implements prometheus.Collector; an agent whose recorder is off
// exports no flight metrics.
func (f *flightRun) Describe(ch chan<- *prometheus.Desc) {
	if f != nil && f.rec != nil {
		f.rec.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (f *flightRun) Collect(ch chan<- prometheus.Metric) {
	if f != nil && f.rec != nil {
		f.rec.Collect(ch)
	}
}

// close lets go of the cgroup resolver.
func (f *flightRun) close() {
	if f != nil && f.cgroups != nil {
		f.cgroups.Close()
	}
}

// openBundles keeps bundles in dir from now on and returns the
// controller's hook that writes them; nil when the recorder is off (the
// bundles already kept are still served).
func (f *flightRun) openBundles(dir string) (func(actuator.Diagnosis, string, time.Time) (string, error), error) {
	if f == nil {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	if err := journal.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	f.mu.Lock()
	f.dir = dir
	f.mu.Unlock()
	if f.rec == nil {
		return nil, nil
	}
	return f.writeBundle, nil
}

func (f *flightRun) bundleDir() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dir
}

// bundle takes the recorder's report for a decision: the outliers from
// bundle_lookback before the diagnosis entered until the decision.
func (f *flightRun) bundle(d actuator.Diagnosis, id string, at time.Time) flight.Report {
	start := d.Since
	if start.IsZero() || start.After(at) {
		start = at
	}
	q := flight.Query{Filter: flight.Filter{Since: start.Add(-f.cfg.BundleLookback), Until: at}, Limit: f.cfg.BundleMaxEvents}
	rep := f.rec.Report(q)
	rep.Decision, rep.Kind, rep.Subject, rep.DiagnosedAt = id, string(d.Kind), d.Subject, d.Since
	return rep
}

// writeBundle writes a decision's bundle to <dir>/<id>.json atomically
// (a temporary file, fsync, rename, fsync of the directory) and drops the
// oldest beyond maxBundles. It returns the file's path.
func (f *flightRun) writeBundle(d actuator.Diagnosis, id string, at time.Time) (string, error) {
	dir := f.bundleDir()
	if dir == "" || f == nil || f.rec == nil {
		return "", errors.New("no bundle directory")
	}
	if err := checkIncidentID(id); err != nil {
		return "", err
	}
	rep := f.bundle(d, id, at)
	data, err := json.Marshal(rep)
	if err != nil {
		return "", fmt.Errorf("bundle %s: %w", id, err)
	}
	path := filepath.Join(dir, id+".json")
	if err := journal.WriteAtomic(path, append(data, '\n')); err != nil {
		return "", fmt.Errorf("bundle %s: %w", id, err)
	}
	f.logger.Info("bundle written", "id", id, "file", path, "events", rep.Matched, "bytes", len(data))
	if err := pruneBundles(dir, maxBundles); err != nil {
		f.logger.Warn("prune bundles", "err", err)
	}
	return path, nil
}

// bundleNames lists dir's bundle files, oldest first: decision ids start
// with the decision's time, so their names sort by it.
func bundleNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".json") && !journal.IsTemp(n) && checkIncidentID(strings.TrimSuffix(n, ".json")) == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func pruneBundles(dir string, keep int) error {
	names, err := bundleNames(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names[:max(len(names)-keep, 0)] {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkIncidentID keeps ids usable as file names: a decision's id.
func checkIncidentID(id string) error {
	if id == "" || len(id) > 128 || strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) >= 0 || strings.HasPrefix(id, ".") {
		return fmt.Errorf("incident id %q: want 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'", id)
	}
	return nil
}

// readIncident reads a bundle's listing entry without decoding its raw
// events: the fields before "events" only.
func readIncident(path string) (flight.Incident, error) {
	fh, err := os.Open(path)
	if err != nil {
		return flight.Incident{}, err
	}
	defer fh.Close()
	dec := json.NewDecoder(bufio.NewReader(fh))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return flight.Incident{}, fmt.Errorf("%s: not a bundle", path)
	}
	head := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return flight.Incident{}, fmt.Errorf("%s: %w", path, err)
		}
		key, _ := t.(string)
		if key == "events" {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return flight.Incident{}, fmt.Errorf("%s: %w", path, err)
		}
		head[key] = v
	}
	b, _ := json.Marshal(head)
	var rep flight.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return flight.Incident{}, fmt.Errorf("%s: %w", path, err)
	}
	if rep.Decision == "" {
		return flight.Incident{}, fmt.Errorf("%s: not a bundle", path)
	}
	return rep.Incident(), nil
}

// Limits of GET /incidents?limit=N.
const (
	defaultIncidents = 100
	maxIncidents     = 1000
)

// routes serves the flight recorder:
//
//	GET /incidents?since=&limit=  the bundles kept, newest first
//	GET /incidents/{id}           one bundle, as written
//	GET /incidents/live?since=&until=&pid=&device=&signal=&limit=
//	                              the recorder's outliers now, summarised and raw
//
// A bad parameter is a 400 whose JSON names it.
func (f *flightRun) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /incidents", f.serveList)
	mux.HandleFunc("GET /incidents/live", f.serveLive)
	mux.HandleFunc("GET /incidents/{id}", f.serveBundle)
}

func (f *flightRun) serveList(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "", fmt.Sprintf("query %q: %v", r.URL.RawQuery, err))
		return
	}
	var since time.Time
	for k := range q {
		if k != "since" && k != "limit" {
			httpjson.WriteError(w, http.StatusBadRequest, k, fmt.Sprintf("%s: unknown parameter; want since or limit", k))
			return
		}
	}
	if v := q.Get("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			since = t
		} else {
			httpjson.WriteError(w, http.StatusBadRequest, "since", fmt.Sprintf("since %q: want a duration before now (10m) or an RFC 3339 time", v))
			return
		}
	}
	limit := defaultIncidents
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxIncidents {
			httpjson.WriteError(w, http.StatusBadRequest, "limit", fmt.Sprintf("limit %q: want a number from 1 to %d", v, maxIncidents))
			return
		}
		limit = n
	}
	out := []flight.Incident{}
	dir := f.bundleDir()
	if dir == "" {
		httpjson.Write(w, http.StatusOK, out)
		return
	}
	names, err := bundleNames(dir)
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	for _, n := range slices.Backward(names) {
		if len(out) == limit {
			break
		}
		inc, err := readIncident(filepath.Join(dir, n))
		if err != nil {
			f.logger.Warn("skip bundle", "file", n, "err", err)
			continue
		}
		if inc.At.Before(since) {
			break
		}
		out = append(out, inc)
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (f *flightRun) serveBundle(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	dir := f.bundleDir()
	if err := checkIncidentID(id); err != nil || dir == "" {
		httpjson.WriteError(w, http.StatusNotFound, "id", fmt.Sprintf("incident %q: no such bundle", id))
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, id+".json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		httpjson.WriteError(w, http.StatusNotFound, "id", fmt.Sprintf("incident %q: no such bundle", id))
	case err != nil:
		httpjson.WriteError(w, http.StatusInternalServerError, "", err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	}
}

func (f *flightRun) serveLive(w http.ResponseWriter, r *http.Request) {
	if f == nil || f.rec == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "", "the flight recorder is off (flight.enabled: false)")
		return
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "", fmt.Sprintf("query %q: %v", r.URL.RawQuery, err))
		return
	}
	q, err := flight.ParseQuery(v, time.Now())
	if err != nil {
		var pe *flight.ParamError
		if errors.As(err, &pe) {
			httpjson.WriteError(w, http.StatusBadRequest, pe.Param, err.Error())
			return
		}
		httpjson.WriteError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, f.rec.Report(q))
}
