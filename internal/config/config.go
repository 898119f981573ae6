package config

import (
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/nervehq/nerve/internal/yamlfield"
	"github.com/nervehq/nerve/probes/targets"
)

// defaultYAML is the configuration the agent runs on when no file is given,
// and the base every user file is decoded on top of.
//
//go:embed default.yaml
var defaultYAML []byte

// Config is the agent's whole configuration. Each field's yaml tag is its
// name in the file and in error messages.
type Config struct {
	Web    Web    `yaml:"web"`
	Log    Log    `yaml:"log"`
	Probes Probes `yaml:"probes"`
	// Actuator diagnoses and acts.
	Actuator Actuator `yaml:"actuator"`
	// Manager is where the rack lock comes from when actuator.lock is
	// "manager".
	Manager Manager `yaml:"manager"`
	// Preflight is what `nerve preflight` checks before the database starts.
	Preflight Preflight `yaml:"preflight"`
	// Flight is the flight recorder: the probes' outliers, kept for a while
	// and written with every decision.
	Flight Flight `yaml:"flight"`
	// Targets are the process groups (a database, its sidecars) that probes
	// break their figures down by, each a label value of its own.
	Targets []targets.Target `yaml:"targets"`
	// BPFStats turns on the kernel's BPF run-time statistics while the agent
	// runs. The switch is machine-wide and costs a little on every run of
	// every BPF program, so it is off unless asked for.
	BPFStats bool `yaml:"bpf_stats"`
}

// Web is where the agent serves its metrics.
type Web struct {
	// ListenAddress is the host:port the agent serves its metrics,
	// /healthz and /decisions on; --web.listen-address overrides it.
	ListenAddress string `yaml:"listen_address"`
	// TelemetryPath is the URL path of the metrics; --web.telemetry-path
	// overrides it.
	TelemetryPath string `yaml:"telemetry_path"`
}

// Log is the agent's own logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// Probes holds the settings of each probe and those common to all.
type Probes struct {
	// Strict makes the agent fail at start when an enabled probe cannot
	// attach, instead of reporting it as not attached and running on.
	Strict    bool      `yaml:"strict"`
	BlockIO   BlockIO   `yaml:"blockio"`
	RunQueue  Histogram `yaml:"runqueue"`
	PageFault Histogram `yaml:"pagefault"`
	JVM       JVM       `yaml:"jvm"`
}

// JVM configures the JVM probe: safepoints, GC pauses and VM operations of
// every JVM (or, when targets are set, of the targets' JVMs).
type JVM struct {
	// Enabled starts the probe; a disabled probe exports nothing.
	Enabled bool `yaml:"enabled"`
	// Attach is how the probe attaches to each JVM's libjvm.so: auto,
	// uprobe_multi or uprobe. It decides whether the agent keeps
	// CAP_SYS_ADMIN after attach.
	Attach string `yaml:"attach"`
	// Thrash is each JVM's jvmquake token bucket: every pause adds its
	// length, running time drains Weight times as fast; over Threshold the
	// JVM is dying slowly (query_of_death).
	Thrash struct {
		// Threshold is how full a JVM's bucket may get before the JVM
		// counts as dying slowly.
		Threshold time.Duration `yaml:"threshold"`
		// Weight is how many times faster running time drains the bucket
		// than pauses fill it.
		Weight float64 `yaml:"weight"`
	} `yaml:"thrash"`
}

// Histogram configures a probe whose only settings are whether it runs and
// how finely it exports its histograms.
type Histogram struct {
	// Enabled starts the probe; a disabled probe exports nothing.
	Enabled bool `yaml:"enabled"`
	// BucketsPerOctave is the exported histogram's resolution: 1, 2 or 4
	// buckets per power of two.
	BucketsPerOctave int `yaml:"buckets_per_octave"`
}

// BlockIO configures the block I/O latency probe.
type BlockIO struct {
	// Enabled starts the probe; a disabled probe exports nothing.
	Enabled bool `yaml:"enabled"`
	// BucketsPerOctave is the exported histogram's resolution: 1, 2 or 4
	// buckets per power of two.
	BucketsPerOctave int `yaml:"buckets_per_octave"`
	// MaxDevices and MaxRequests size the probe's maps; 0 sizes them from
	// the machine.
	MaxDevices  int `yaml:"max_devices"`
	MaxRequests int `yaml:"max_requests"`
}

// Actuator configures diagnosis and the action ladder.
type Actuator struct {
	// Enabled runs diagnosis and the action ladder; off, the agent only
	// exports metrics.
	Enabled bool `yaml:"enabled"`
	// Mode caps every rung: observe (diagnose only), advise (decide and
	// explain, do not act) or enforce (the per-rung modes apply).
	Mode string `yaml:"mode"`
	// Rungs sets the mode of each rung 1-5; a rung may not be more
	// permissive than the one below it.
	Rungs map[int]string `yaml:"rungs"`
	// Tick is how often signals are sampled and rules stepped.
	Tick time.Duration `yaml:"tick"`
	// StateDir keeps the journal of actions in flight and the decision
	// reports.
	StateDir string `yaml:"state_dir"`
	// GoalsFile overrides the built-in goals; reloaded on SIGHUP.
	GoalsFile string `yaml:"goals_file"`
	// Target names the database among targets: its run-queue and
	// page-fault figures are the ones that count. Empty: the node's.
	Target string `yaml:"target"`
	// DataMounts get a direct-I/O canary every tick (failed_drive).
	DataMounts []string `yaml:"data_mounts"`
	// Nodetool is the path of nodetool; empty turns live control off.
	Nodetool string `yaml:"nodetool"`
	// CompactionThroughputMiB is what disk_overload lowers compaction to.
	CompactionThroughputMiB int `yaml:"compaction_throughput_mib"`
	// SidecarUnits are systemd units that may be restarted (rung 2).
	SidecarUnits []string `yaml:"sidecar_units"`
	// DumpDir receives the thread and heap dumps of a JVM killed for a
	// query of death (rung 3); the JVM's user must be able to write it.
	DumpDir string `yaml:"dump_dir"`
	// HeapDump adds a heap dump to the thread dump: as large as the heap,
	// and slow to write.
	HeapDump bool `yaml:"heap_dump"`
	// TransferHook and ExitHook are operator commands (argv) for rungs 4
	// and 5, e.g. ["nodetool", "decommission"].
	TransferHook []string `yaml:"transfer_hook"`
	ExitHook     []string `yaml:"exit_hook"`
	// Lock is where rack locks come from: "none" refuses every action that
	// stops the database, "local" grants one at a time on this node (a
	// one-box trial).
	Lock string `yaml:"lock"`
	// CQLHosts, when set, are asked `SELECT release_version FROM
	// system.local` after every action: an action after which the database
	// does not answer within two minutes has failed.
	CQLHosts []string `yaml:"cql_hosts"`
	// WebhookURL receives alerts as JSON POSTs; empty: log only.
	WebhookURL string `yaml:"webhook_url"`
	// EscalateAfter is how long a diagnosis may persist after an action
	// before the ladder goes one rung up.
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// MaxDatabaseRestartsPerHour trips the crash-loop guard: after that
	// many database restarts within an hour, no action that stops the
	// database is taken for an hour.
	MaxDatabaseRestartsPerHour int `yaml:"max_database_restarts_per_hour"`
}

// Manager is the manager the agent asks for the rack lock: its replicas,
// and where this node sits in the fleet.
type Manager struct {
	// Endpoints are the replicas' API URLs, like http://m1:19649; the
	// client tries them in turn and follows the leader.
	Endpoints []string `yaml:"endpoints"`
	// TokenFile holds the bearer token; "" sends none.
	TokenFile string `yaml:"token_file"`
	// CAFile is a PEM bundle to trust for https endpoints besides the
	// system's; "" trusts the system's only.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the agent's client certificate, for
	// replicas that require one (mTLS); both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	Cluster  string `yaml:"cluster"`
	Rack     string `yaml:"rack"`
	// Node is this node's name at the manager; "" is the hostname.
	Node string `yaml:"node"`
	// Lease is how long a grant lives without a renewal; the agent renews
	// it every third of that while it holds the lock.
	Lease time.Duration `yaml:"lease"`
}

// Lease limits: a lease renewed every third of itself needs a few seconds
// of slack for a slow manager; one over an hour keeps a dead node's rack
// locked too long before the manager marks the grant suspect.
const (
	MinLease = 5 * time.Second
	MaxLease = time.Hour
)

// Default returns the embedded default configuration.
func Default() *Config {
	cfg := new(Config)
	if err := yamlfield.Decode(defaultYAML, cfg, "config file"); err != nil {
		// default.yaml is compiled in and TestDefault parses and validates
		// it, so this is a broken build, not a runtime condition.
		panic(fmt.Sprintf("config: embedded default.yaml: %v", err))
	}
	return cfg
}

// Parse decodes data on top of the defaults and validates the result. Only
// the fields data names change; empty data gives the defaults.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	if err := yamlfield.Decode(data, cfg, "config file"); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load reads and parses the file at path; path "" gives the defaults.
// Errors name the file.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}
