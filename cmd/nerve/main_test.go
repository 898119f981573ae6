package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/nervehq/nerve/internal/agent"
	"github.com/nervehq/nerve/internal/buildinfo"
)

// flags renders the overrides that are set, to compare in one string.
func flags(o agent.Overrides) string {
	var parts []string
	if o.ListenAddress != nil {
		parts = append(parts, "listen="+*o.ListenAddress)
	}
	if o.TelemetryPath != nil {
		parts = append(parts, "path="+*o.TelemetryPath)
	}
	if o.LogLevel != nil {
		parts = append(parts, "level="+*o.LogLevel)
	}
	if o.ProbesStrict != nil {
		parts = append(parts, fmt.Sprintf("strict=%v", *o.ProbesStrict))
	}
	if o.BPFStats != nil {
		parts = append(parts, fmt.Sprintf("stats=%v", *o.BPFStats))
	}
	return strings.Join(parts, " ")
}

// Only flags the user gave may override the config file; a flag at its
// default must leave the file's value alone.
func TestParseOverrides(t *testing.T) {
	tests := []struct {
		args       []string
		want       string
		wantConfig string
	}{
		{args: []string{"agent"}, want: ""},
		{args: []string{"agent", "--config.file=/etc/nerve.yaml"}, want: "", wantConfig: "/etc/nerve.yaml"},
		{args: []string{"agent", "--web.listen-address=:19648"}, want: "listen=:19648"},
		{args: []string{"agent", "--web.telemetry-path=/m", "--probes.strict"}, want: "path=/m strict=true"},
		{args: []string{"agent", "--no-probes.strict", "--bpf-stats"}, want: "strict=false stats=true"},
		{args: []string{"--log.level=debug", "agent"}, want: "level=debug"},
		{args: []string{"agent", "--log.level=warn"}, want: "level=warn"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			inv, code, ok := parse(tt.args, &stdout, &stderr)
			if !ok {
				t.Fatalf("parse: code %d, stderr %q", code, stderr.String())
			}
			if inv.command != "agent" {
				t.Errorf("command = %q, want agent", inv.command)
			}
			if got := flags(inv.overrides); got != tt.want {
				t.Errorf("overrides = %q, want %q", got, tt.want)
			}
			if inv.configFile != tt.wantConfig {
				t.Errorf("config file = %q, want %q", inv.configFile, tt.wantConfig)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("probes:\n  blockio:\n    buckets_per_octave: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no command", nil, exitUsage, "usage: nerve"},
		{"unknown command", []string{"bogus"}, exitUsage, "nerve: expected command but got \"bogus\""},
		{"unknown flag", []string{"agent", "--web.listen"}, exitUsage, "nerve: unknown long flag '--web.listen'"},
		{"bad config", []string{"agent", "--config.file=" + bad}, exitUsage,
			"nerve: config " + bad + ": probes.blockio.buckets_per_octave: must be 1, 2 or 4, got 3\n"},
		{"missing config", []string{"agent", "--config.file=" + filepath.Join(dir, "nope.yaml")}, exitUsage, "no such file or directory\n"},
		{"bad flag value", []string{"agent", "--web.telemetry-path=metrics"}, exitUsage,
			"nerve: command-line flags: web.telemetry_path: must start with \"/\", got \"metrics\"\n"},
		{"bad log format", []string{"--log.format=xml", "agent"}, exitUsage, "nerve: --log.format must be logfmt or json, got \"xml\"\n"},
		{"bad log format, any command", []string{"--log.format=text", "version"}, exitUsage, "nerve: --log.format must be logfmt or json, got \"text\"\n"},
		{"bad log level", []string{"agent", "--log.level=loud"}, exitUsage, "nerve: --log.level must be debug, info, warn or error, got \"loud\"\n"},
		{"bad log level, any command", []string{"--log.level=INFO", "status"}, exitUsage, "nerve: --log.level must be debug, info, warn or error, got \"INFO\"\n"},
		{"missing goals file", []string{"agent", "--config.file=" + badGoalsCfg(t, dir, "none.yaml", "")}, exitUsage,
			"nerve: actuator.goals_file: goals: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory\n"},
		{"bad goals file", []string{"agent", "--config.file=" + badGoalsCfg(t, dir, "typo.yaml", "disk:\n  entr: 1\n")}, exitUsage,
			"nerve: actuator.goals_file: goals " + filepath.Join(dir, "typo.yaml") + ": line 2: disk.entr: unknown field"},
		{"fractional pid", []string{"report", "--pid=1.5"}, exitUsage, "nerve: --pid: want a whole number, got \"1.5\""},
		{"pid beyond int", []string{"report", "--pid=99999999999999999999"}, exitUsage, "nerve: --pid: want a whole number, got \"99999999999999999999\""},
		{"fractional limit", []string{"status", "--limit=2.9"}, exitUsage, "nerve: --limit: want a whole number, got \"2.9\""},
		{"word for top", []string{"report", "--top=many"}, exitUsage, "nerve: --top: want a whole number, got \"many\""},
		{"version", []string{"version"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantCode == exitUsage && tt.args != nil && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr = %q, want one line", stderr.String())
			}
		})
	}
}

// `nerve version`: the version, revision, Go version and platform on the
// first line, then the hash of the embedded BPF objects, the one the agent
// exports in nerve_build_info.
func TestVersion(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run([]string{"version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit status %d, stderr %q", code, stderr.String())
	}
	want := regexp.MustCompile(`^nerve dev \(revision \S+, go\S+ ` + runtime.GOOS + `/` + runtime.GOARCH + `\)\n` +
		`bpf_object_sha256 ([0-9a-f]{64})\n$`)
	got := stdout.String()
	m := want.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("version printed %q, want it to match %s", got, want)
	}
	if m[1] != buildinfo.BPFObjectSHA256() {
		t.Errorf("hash %s, want the one nerve_build_info exports, %s", m[1], buildinfo.BPFObjectSHA256())
	}
	stdout.Reset()
	run([]string{"version"}, &stdout, &stderr)
	if again := stdout.String(); again != got {
		t.Errorf("second run printed %q, first %q", again, got)
	}
}

// badGoalsCfg writes a config naming dir/name as the goals file, and that
// file with goals unless goals is "" (then there is none).
func badGoalsCfg(t *testing.T, dir, name, goals string) string {
	t.Helper()
	if goals != "" {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(goals), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config-"+name)
	if err := os.WriteFile(cfg, []byte("actuator:\n  goals_file: "+filepath.Join(dir, name)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}
