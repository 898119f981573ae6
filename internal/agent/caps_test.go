package agent

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nervehq/nerve/internal/config"
	"github.com/nervehq/nerve/jvm/probe"
	"github.com/nervehq/nerve/probes/targets"
)

func TestNeededCapabilities(t *testing.T) {
	jvm := []string{"CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON", "CAP_SYS_PTRACE"}
	jvmUprobes := []string{"CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}
	for _, tt := range []struct {
		name    string
		release string
		running []string
		attach  probe.AttachMode // the JVM probe's, when it runs
		edit    func(*config.Config)
		want    []string
	}{
		{name: "defaults, uprobe_multi", release: "6.18.44", running: []string{"blockio", "runqueue", "pagefault", "jvm"},
			attach: probe.AttachUprobeMulti, want: jvm,
			edit: func(c *config.Config) { c.Flight.Enabled = true }},
		{name: "defaults, classic uprobes", release: "6.1.0-13-amd64", running: []string{"blockio", "runqueue", "pagefault", "jvm"},
			attach: probe.AttachUprobe, want: jvmUprobes,
			edit: func(c *config.Config) { c.Flight.Enabled = true }},
		{name: "classic uprobes forced", release: "6.18.44", running: []string{"jvm"},
			attach: probe.AttachUprobe, want: jvmUprobes,
			edit: func(c *config.Config) { c.Probes.JVM.Attach = "uprobe" }},
		{name: "jvm probe failed", release: "6.18.44", running: []string{"blockio", "runqueue", "pagefault"}},
		{name: "jvm probe off", release: "6.18.44", running: []string{"blockio"},
			edit: func(c *config.Config) { c.Probes.JVM.Enabled = false }},
		{name: "before 6.5 maps need CAP_BPF", release: "6.1.0-13-amd64", running: []string{"blockio"},
			want: []string{"CAP_BPF"}},
		{name: "before 6.5, nothing running", release: "5.15.0"},
		{name: "process target", release: "6.6.1", running: []string{"runqueue"},
			edit: func(c *config.Config) { c.Targets = []targets.Target{{Name: "db", Process: "java"}} },
			want: []string{"CAP_SYS_PTRACE"}},
		{name: "cgroup target", release: "6.6.1", running: []string{"runqueue"},
			edit: func(c *config.Config) { c.Targets = []targets.Target{{Name: "db", Cgroup: "/db"}} }},
		{name: "flight recorder, pagefault running", release: "6.6.1", running: []string{"blockio", "pagefault"},
			edit: func(c *config.Config) { c.Flight.Enabled = true },
			want: []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}},
		{name: "flight recorder, blockio only", release: "6.6.1", running: []string{"blockio"},
			edit: func(c *config.Config) { c.Flight.Enabled = true },
			want: []string{"CAP_DAC_READ_SEARCH"}},
		{name: "flight recorder, nothing running", release: "6.6.1",
			edit: func(c *config.Config) { c.Flight.Enabled = true }},
		{name: "data mounts", release: "6.6.1",
			edit: func(c *config.Config) { c.Actuator.DataMounts = []string{"/var/lib/cassandra"} },
			want: []string{"CAP_DAC_OVERRIDE"}},
		{name: "data mounts, actuator off", release: "6.6.1",
			edit: func(c *config.Config) {
				c.Actuator.DataMounts = []string{"/var/lib/cassandra"}
				c.Actuator.Enabled = false
			}},
		{name: "rung 3 enforced", release: "6.6.1",
			edit: func(c *config.Config) { c.Actuator.Rungs = map[int]string{1: "enforce", 2: "enforce", 3: "enforce"} },
			want: []string{"CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SYS_PTRACE"}},
		{name: "rung 3 enforced, mode advise", release: "6.6.1",
			edit: func(c *config.Config) {
				c.Actuator.Rungs = map[int]string{1: "enforce", 2: "enforce", 3: "enforce"}
				c.Actuator.Mode = "advise"
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Actuator.Rungs = map[int]string{1: "enforce", 2: "enforce", 3: "advise", 4: "advise", 5: "advise"}
			cfg.Actuator.Mode = "enforce"
			cfg.Flight.Enabled = false // its own cases turn it on
			if tt.edit != nil {
				tt.edit(cfg)
			}
			need := neededCapabilities(cfg, tt.release, func(p string) bool {
				for _, r := range tt.running {
					if r == p {
						return true
					}
				}
				return false
			}, tt.attach)
			var got []string
			for c, why := range need {
				if len(why) == 0 || why[0] == "" {
					t.Errorf("%v kept without a reason", c)
				}
				got = append(got, c.String())
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("needed %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOldBPF(t *testing.T) {
	for _, tt := range []struct {
		release string
		want    bool
	}{
		{"6.5.0", false}, {"6.18.44-fc-v769", false}, {"7.0", false}, {"6.4.16", true},
		{"6.1.0-13-amd64", true}, {"5.15.0-91-generic", true}, {"6.10rc1", false}, {"garbage", true},
	} {
		if got := oldBPF(tt.release); got != tt.want {
			t.Errorf("oldBPF(%q) = %v, want %v", tt.release, got, tt.want)
		}
	}
}

func TestParseStatusCaps(t *testing.T) {
	status := "Name:\tnerve\nCapInh:\t0000000000000000\nCapPrm:\t000000c000280006\n" +
		"CapEff:\t000000c000280006\nCapBnd:\t000000c000280126\nCapAmb:\t0000000000000000\n"
	got, err := parseStatusCaps(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := got["effective"].String(), "CAP_DAC_OVERRIDE,CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_PERFMON,CAP_BPF"; got != want {
		t.Errorf("effective = %s, want %s", got, want)
	}
	if got, want := got["bounding"].String(), "CAP_DAC_OVERRIDE,CAP_DAC_READ_SEARCH,CAP_KILL,CAP_SETPCAP,CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_PERFMON,CAP_BPF"; got != want {
		t.Errorf("bounding = %s, want %s", got, want)
	}
	for _, bad := range []string{"CapEff:\t0000000000000000\n", "CapEff:\tzz\nCapBnd:\t0\n", ""} {
		if _, err := parseStatusCaps(strings.NewReader(bad)); err == nil {
			t.Errorf("parseStatusCaps(%q): no error", bad)
		}
	}
	if got := capSet(0).String(); got != "none" {
		t.Errorf("empty set = %q, want none", got)
	}
	if got := capability(55).String(); got != "CAP_55" {
		t.Errorf("unknown capability = %q, want CAP_55", got)
	}
}
