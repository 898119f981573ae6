package config

import (
	"github.com/nervehq/nerve/probes/targets"
	"math"
	"time"

	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Sanity limits on map sizes. They are not what the kernel allows but what a
// node could plausibly need; a larger number is far more likely a typo that
// would pin hundreds of megabytes of locked kernel memory.
const (
	MaxDevicesLimit  = 1 << 16
	MaxRequestsLimit = 1 << 22
)

// Paths the agent serves itself, which the telemetry path must not shadow.
const (
	IndexPath  = "/"
	HealthPath = "/healthz"
)

// Validate checks every setting and returns all problems found, as Errors,
// or nil. It is called by Load and Parse, and again by anyone who changes a
// Config afterwards (command-line flags do).
func (c *Config) Validate() error {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	if err := checkListenAddress(c.Web.ListenAddress); err != nil {
		add("web.listen_address", "%v", err)
	}
	if err := checkTelemetryPath(c.Web.TelemetryPath); err != nil {
		add("web.telemetry_path", "%v", err)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		add("log.level", "%v", err)
	}

	b := c.Probes.BlockIO
	switch b.BucketsPerOctave {
	case 1, 2, 4:
	default:
		add("probes.blockio.buckets_per_octave", "must be 1, 2 or 4, got %d", b.BucketsPerOctave)
	}
	if b.MaxDevices < 0 || b.MaxDevices > MaxDevicesLimit {
		add("probes.blockio.max_devices", "must be from 0 (sized from the machine) to %d, got %d", MaxDevicesLimit, b.MaxDevices)
	}
	if b.MaxRequests < 0 || b.MaxRequests > MaxRequestsLimit {
		add("probes.blockio.max_requests", "must be from 0 (sized from the machine) to %d, got %d", MaxRequestsLimit, b.MaxRequests)
	}

	for _, h := range []struct {
		path string
		h    Histogram
	}{{"probes.runqueue", c.Probes.RunQueue}, {"probes.pagefault", c.Probes.PageFault}} {
		switch h.h.BucketsPerOctave {
		case 1, 2, 4:
		default:
			add(h.path+".buckets_per_octave", "must be 1, 2 or 4, got %d", h.h.BucketsPerOctave)
		}
	}
	if a := c.Probes.JVM.Attach; a != "auto" && a != "uprobe_multi" && a != "uprobe" {
		add("probes.jvm.attach", `must be "auto", "uprobe_multi" or "uprobe", got %q`, a)
	}
	if th := c.Probes.JVM.Thrash; th.Threshold <= 0 {
		add("probes.jvm.thrash.threshold", "must be positive, got %v", th.Threshold)
	}
	if w := c.Probes.JVM.Thrash.Weight; !(w > 0) || math.IsInf(w, 0) {
		add("probes.jvm.thrash.weight", "must be a positive number, got %v", w)
	}
	ac := c.Actuator
	modeOK := func(m string) bool { return m == "observe" || m == "advise" || m == "enforce" }
	if !modeOK(ac.Mode) {
		add("actuator.mode", "must be observe, advise or enforce, got %q", ac.Mode)
	}
	for r, m := range ac.Rungs {
		if r < 1 || r > 5 {
			add("actuator.rungs", "rung must be 1 to 5, got %d", r)
		} else if !modeOK(m) {
			add("actuator.rungs", "rung %d: must be observe, advise or enforce, got %q", r, m)
		}
	}
	if ac.Tick < time.Second {
		add("actuator.tick", "must be at least 1s, got %v", ac.Tick)
	}
	if ac.Enabled && ac.StateDir == "" {
		add("actuator.state_dir", "must be set when the actuator is enabled")
	}
	if ac.Lock != "none" && ac.Lock != "local" && ac.Lock != "manager" {
		add("actuator.lock", `must be "none", "local" or "manager", got %q`, ac.Lock)
	}
	if ac.CompactionThroughputMiB < 0 {
		add("actuator.compaction_throughput_mib", "must not be negative, got %d", ac.CompactionThroughputMiB)
	}
	if ac.EscalateAfter < 0 {
		add("actuator.escalate_after", "must not be negative, got %v", ac.EscalateAfter)
	}
	if ac.MaxDatabaseRestartsPerHour < 0 {
		add("actuator.max_database_restarts_per_hour", "must not be negative, got %d", ac.MaxDatabaseRestartsPerHour)
	}
	if ac.Target != "" {
		found := false
		for _, t := range c.Targets {
			found = found || t.Name == ac.Target
		}
		if !found {
			add("actuator.target", "%q names no entry of targets", ac.Target)
		}
	}
	m := c.Manager
	for _, e := range m.Endpoints {
		if err := checkEndpoint(e); err != nil {
			add("manager.endpoints", "%v", err)
		}
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		add("manager.cert_file", "manager.cert_file and manager.key_file must be set together, got %q and %q", m.CertFile, m.KeyFile)
	}
	if m.Lease < MinLease || m.Lease > MaxLease {
		add("manager.lease", "must be from %v to %v, got %v", MinLease, MaxLease, m.Lease)
	}
	if ac.Lock == "manager" {
		if len(m.Endpoints) == 0 {
			add("manager.endpoints", `must name at least one replica when actuator.lock is "manager"`)
		}
		if m.Cluster == "" {
			add("manager.cluster", `must be set when actuator.lock is "manager"`)
		}
		if m.Rack == "" {
			add("manager.rack", `must be set when actuator.lock is "manager"`)
		}
	}
	errs = append(errs, c.Preflight.validate()...)
	errs = append(errs, c.Flight.validate()...)
	if err := targets.ValidateAll(c.Targets, MaxTargets); err != nil {
		add("targets", "%v", err)
	}

	if len(errs) == 0 {
		return nil
	}
	return errs
}

// MaxTargets is how many targets the probes' kernel maps can tell apart.
const MaxTargets = 64

func checkListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, like \":19648\" or \"127.0.0.1:19648\", got %q", addr)
	}
	// Port 0 would pick a random port, which Prometheus could never find.
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be a number from 1 to 65535, got %q", port)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("host must be empty, an IP address or a host name, got %q", host)
	}
	return nil
}

// checkEndpoint checks a manager replica's URL: http or https, a host,
// and nothing after the path.
func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("must be URLs like \"http://manager1:19649\", got %q", e)
	}
	return nil
}

func checkTelemetryPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must start with \"/\", got %q", p)
	case strings.IndexFunc(p, notPathChar) >= 0:
		// Besides query and fragment, this keeps out "{" and "}", which the
		// agent's HTTP router would read as wildcards.
		return fmt.Errorf("must be a plain URL path of letters, digits and / . _ ~ -, got %q", p)
	case path.Clean(p) != p:
		return fmt.Errorf("must be a clean path, got %q (did you mean %q?)", p, path.Clean(p))
	case p == IndexPath || p == HealthPath:
		return fmt.Errorf("%q is the agent's own page; choose another path", p)
	}
	return nil
}

// notPathChar reports whether r may not appear in the telemetry path: only
// URL path characters that never need escaping may.
func notPathChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("/._~-", r)
}

// ParseLevel parses a log level name: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}
