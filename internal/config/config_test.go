package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/yamlfield"
)

func TestDefault(t *testing.T) {
	cfg, err := Parse(defaultYAML)
	if err != nil {
		t.Fatalf("default.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default.yaml does not validate: %v", err)
	}
	if got, want := cfg.Web.ListenAddress, ":19648"; got != want {
		t.Errorf("web.listen_address = %q, want %q", got, want)
	}
	if got := Default(); Changed(got, cfg) != nil {
		t.Errorf("Default() and Parse(default.yaml) differ in %v", Changed(got, cfg))
	}
	// Every setting of the schema must be spelt out in default.yaml, where
	// operators read what they can set.
	keys := map[string]bool{}
	for _, p := range yamlfield.Paths(defaultYAML) {
		keys[p] = true
	}
	for _, p := range Paths() {
		if !keys[p] {
			t.Errorf("default.yaml does not show %s", p)
		}
	}
}

func TestLoadDefaultsOnly(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if diff := Changed(cfg, Default()); diff != nil {
		t.Errorf("Load(\"\") differs from the defaults in %v", diff)
	}
}

func TestLoadGood(t *testing.T) {
	tests := []struct {
		file string
		want func(*Config) // edits the defaults into what the file says
	}{
		{file: "empty.yaml", want: func(*Config) {}},
		{file: "comments.yaml", want: func(*Config) {}},
		{file: "null_sections.yaml", want: func(*Config) {}},
		{file: "partial.yaml", want: func(c *Config) { c.Probes.BlockIO.BucketsPerOctave = 4 }},
		{file: "full.yaml", want: func(c *Config) {
			c.Web = Web{ListenAddress: "127.0.0.1:9999", TelemetryPath: "/nerve/metrics"}
			c.Log.Level = "debug"
			c.Probes.Strict = true
			c.Probes.BlockIO = BlockIO{Enabled: false, BucketsPerOctave: 4, MaxDevices: 64, MaxRequests: 8192}
			c.BPFStats = true
		}},
		{file: "manager.yaml", want: func(c *Config) {
			c.Actuator.Lock = "manager"
			c.Manager = Manager{Endpoints: []string{"http://m1:19649", "https://m2.example:19649"},
				TokenFile: "/etc/nerve/manager.token", Cluster: "prod-east", Rack: "rack1", Lease: 90 * time.Second}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(want)
			if diff := Changed(got, want); diff != nil {
				t.Errorf("settings differ from what the file says: %v\ngot  %+v\nwant %+v", diff, got, want)
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want []string // every one must appear in the error, in order
	}{
		{"bad_syntax.yaml", []string{"line 2: invalid YAML"}},
		{"unknown_field.yaml", []string{"line 4: probes.blockio.bucket_per_octave: unknown field", "buckets_per_octave"}},
		{"unknown_section.yaml", []string{"line 3: metrics: unknown field (known here: web, log, probes, actuator, manager, preflight, flight, targets, bpf_stats)"}},
		{"wrong_type_int.yaml", []string{`line 3: probes.blockio.max_devices: must be an integer, got "lots"`}},
		{"wrong_type_bool.yaml", []string{`line 2: probes.strict: must be true or false, got "maybe"`}},
		{"wrong_type_section.yaml", []string{`line 1: web: must be a mapping, got ":19648"`}},
		{"wrong_type_list.yaml", []string{"line 3: web.listen_address: must be a string, got a list"}},
		{"top_level_list.yaml", []string{"line 1: the file must be a mapping of settings, got a list"}},
		{"duplicate_key.yaml", []string{"line 3: web.listen_address: set twice (first at line 2)"}},
		{"two_documents.yaml", []string{"line 3: more than one YAML document"}},
		{"bad_buckets.yaml", []string{"probes.blockio.buckets_per_octave: must be 1, 2 or 4, got 3"}},
		{"bad_runqueue_buckets.yaml", []string{"probes.runqueue.buckets_per_octave: must be 1, 2 or 4, got 0"}},
		{"actuator_bad_mode.yaml", []string{`actuator.mode: must be observe, advise or enforce, got "yolo"`}},
		{"actuator_bad_lock.yaml", []string{`actuator.lock: must be "none", "local" or "manager", got "zookeeper"`}},
		{"manager_missing.yaml", []string{
			`manager.endpoints: must be URLs like "http://manager1:19649", got "m1:19649"; `,
			"manager.lease: must be from 5s to 1h0m0s, got 1s; ",
			`manager.cluster: must be set when actuator.lock is "manager"; `,
			`manager.rack: must be set when actuator.lock is "manager"`,
		}},
		{"actuator_unknown_target.yaml", []string{`actuator.target: "cassandra" names no entry of targets`}},
		{"actuator_fast_tick.yaml", []string{"actuator.tick: must be at least 1s, got 10ms"}},
		{"target_duplicate.yaml", []string{`targets: targets[1]: name "cassandra" is used twice`}},
		{"target_reserved.yaml", []string{`targets: targets[0]: name "node" is reserved`}},
		{"target_two_kinds.yaml", []string{`target "db": exactly one of systemd_unit, cgroup and process must be set`}},
		{"target_unknown_field.yaml", []string{"line 3: targets[0].unit: unknown field"}},
		{"bad_listen_address.yaml", []string{`web.listen_address: must be host:port`, `got "19648"`}},
		{"bad_port.yaml", []string{`web.listen_address: port must be a number from 1 to 65535, got "99999"`}},
		{"bad_telemetry_path.yaml", []string{`web.telemetry_path: must start with "/", got "metrics"`}},
		{"telemetry_path_healthz.yaml", []string{`web.telemetry_path: "/healthz" is the agent's own page`}},
		{"bad_log_level.yaml", []string{`log.level: must be debug, info, warn or error, got "verbose"`}},
		{"several_bad_values.yaml", []string{
			"probes.blockio.buckets_per_octave: must be 1, 2 or 4, got 3; ",
			"probes.blockio.max_devices: must be from 0 (sized from the machine) to 65536, got -1; ",
			"probes.blockio.max_requests: must be from 0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load = %+v, want an error", cfg)
			}
			msg := err.Error()
			if prefix := "config " + path + ": "; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans lines; the agent prints it as one", msg)
			}
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %q holds no *FieldError", msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %q does not name the file", err)
	}
}

// Every path Validate reports must exist in the schema, or the operator is
// told to fix a setting that cannot be set.
func TestValidatePathsExist(t *testing.T) {
	bad := &Config{
		Web:    Web{ListenAddress: "x", TelemetryPath: "x"},
		Log:    Log{Level: "x"},
		Probes: Probes{BlockIO: BlockIO{BucketsPerOctave: -1, MaxDevices: -1, MaxRequests: -1}},
	}
	var errs Errors
	if !errors.As(bad.Validate(), &errs) {
		t.Fatal("Validate of a bad config returned no Errors")
	}
	paths := Paths()
	for _, e := range errs {
		if !slices.Contains(paths, e.Path) {
			t.Errorf("Validate reports %q, which is not a setting (settings: %v)", e.Path, paths)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"listen on ip", func(c *Config) { c.Web.ListenAddress = "10.0.0.1:19648" }, ""},
		{"listen on ipv6", func(c *Config) { c.Web.ListenAddress = "[::1]:19648" }, ""},
		{"listen on host", func(c *Config) { c.Web.ListenAddress = "localhost:19648" }, ""},
		{"port zero", func(c *Config) { c.Web.ListenAddress = ":0" }, "web.listen_address: port must be"},
		{"named port", func(c *Config) { c.Web.ListenAddress = ":http" }, "web.listen_address: port must be"},
		{"no port", func(c *Config) { c.Web.ListenAddress = "localhost" }, "web.listen_address: must be host:port"},
		{"empty address", func(c *Config) { c.Web.ListenAddress = "" }, "web.listen_address: must be host:port"},
		{"path root", func(c *Config) { c.Web.TelemetryPath = "/" }, `web.telemetry_path: "/" is the agent's own page`},
		{"path unclean", func(c *Config) { c.Web.TelemetryPath = "/metrics/" }, `did you mean "/metrics"`},
		{"path query", func(c *Config) { c.Web.TelemetryPath = "/metrics?x=1" }, "must be a plain URL path"},
		{"path wildcard", func(c *Config) { c.Web.TelemetryPath = "/{x}" }, "must be a plain URL path"},
		{"path space", func(c *Config) { c.Web.TelemetryPath = "/a b" }, "must be a plain URL path"},
		{"path punctuation", func(c *Config) { c.Web.TelemetryPath = "/nerve_1.0/-~metrics" }, ""},
		{"path nested", func(c *Config) { c.Web.TelemetryPath = "/nerve/metrics" }, ""},
		{"buckets 1", func(c *Config) { c.Probes.BlockIO.BucketsPerOctave = 1 }, ""},
		{"buckets 4", func(c *Config) { c.Probes.BlockIO.BucketsPerOctave = 4 }, ""},
		{"buckets 0", func(c *Config) { c.Probes.BlockIO.BucketsPerOctave = 0 }, "got 0"},
		{"buckets 8", func(c *Config) { c.Probes.BlockIO.BucketsPerOctave = 8 }, "got 8"},
		{"max devices limit", func(c *Config) { c.Probes.BlockIO.MaxDevices = MaxDevicesLimit }, ""},
		{"max devices over", func(c *Config) { c.Probes.BlockIO.MaxDevices = MaxDevicesLimit + 1 }, "probes.blockio.max_devices"},
		{"max requests limit", func(c *Config) { c.Probes.BlockIO.MaxRequests = MaxRequestsLimit }, ""},
		{"max requests negative", func(c *Config) { c.Probes.BlockIO.MaxRequests = -5 }, "probes.blockio.max_requests"},
		{"lock manager", func(c *Config) {
			c.Actuator.Lock = "manager"
			c.Manager.Endpoints, c.Manager.Cluster, c.Manager.Rack = []string{"http://m1:19649"}, "c", "r"
		}, ""},
		{"lock manager no endpoints", func(c *Config) {
			c.Actuator.Lock = "manager"
			c.Manager.Cluster, c.Manager.Rack = "c", "r"
		}, `manager.endpoints: must name at least one replica when actuator.lock is "manager"`},
		{"endpoints without lock manager", func(c *Config) { c.Manager.Endpoints = []string{"http://m1:19649"} }, ""},
		{"endpoint with query", func(c *Config) { c.Manager.Endpoints = []string{"http://m1:19649/?x=1"} }, "manager.endpoints"},
		{"cert without key", func(c *Config) { c.Manager.CertFile = "/etc/nerve/agent.pem" },
			`manager.cert_file: manager.cert_file and manager.key_file must be set together, got "/etc/nerve/agent.pem" and ""`},
		{"lease long", func(c *Config) { c.Manager.Lease = 2 * time.Hour }, "manager.lease: must be from 5s to 1h0m0s, got 2h0m0s"},
		{"level upper case", func(c *Config) { c.Log.Level = "INFO" }, "log.level"},
		{"jvm attach uprobe", func(c *Config) { c.Probes.JVM.Attach = "uprobe" }, ""},
		{"jvm attach uprobe_multi", func(c *Config) { c.Probes.JVM.Attach = "uprobe_multi" }, ""},
		{"jvm attach unknown", func(c *Config) { c.Probes.JVM.Attach = "kprobe" },
			`probes.jvm.attach: must be "auto", "uprobe_multi" or "uprobe", got "kprobe"`},
		{"jvm attach empty", func(c *Config) { c.Probes.JVM.Attach = "" }, "probes.jvm.attach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate = nil, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestChanged(t *testing.T) {
	a, b := Default(), Default()
	if got := Changed(a, b); got != nil {
		t.Errorf("Changed(defaults, defaults) = %v, want nil", got)
	}
	b.Log.Level = "debug"
	b.Probes.BlockIO.MaxDevices = 3
	b.BPFStats = true
	got, want := Changed(a, b), []string{"log.level", "probes.blockio.max_devices", "bpf_stats"}
	if !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}

// Decoding on top of the defaults must not let one Parse leak into the next
// or into Default.
func TestParseDoesNotShareState(t *testing.T) {
	if _, err := Parse([]byte("probes: {blockio: {buckets_per_octave: 4}}")); err != nil {
		t.Fatal(err)
	}
	if got := Default().Probes.BlockIO.BucketsPerOctave; got != 2 {
		t.Errorf("default buckets_per_octave after a Parse = %d, want 2", got)
	}
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"debug", "info", "warn", "error"} {
		if _, err := ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q) = %v", s, err)
		}
	}
	if _, err := ParseLevel("trace"); err == nil {
		t.Error("ParseLevel(\"trace\") = nil error")
	}
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(defaultYAML)
	f.Add([]byte("web: {listen_address: ':1', telemetry_path: /m}\nprobes: {blockio: {buckets_per_octave: 1}}"))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("<<: {web: {listen_address: ':2'}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Errorf("Parse returned both a config and %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Parse accepted a config that does not validate: %v", err)
		}
	})
}
