package config

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidatePreflight(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Preflight)
		want string // "" = valid
	}{
		{"defaults", func(*Preflight) {}, ""},
		{"mounts", func(p *Preflight) { p.Mounts = []string{"/var/lib/cassandra", "/data2"} }, ""},
		{"relative mount", func(p *Preflight) { p.Mounts = []string{"data"} }, `preflight.mounts: must be clean absolute paths, got "data"`},
		{"unclean mount", func(p *Preflight) { p.Mounts = []string{"/data/"} }, `preflight.mounts: must be clean absolute paths, got "/data/"`},
		{"size zero", func(p *Preflight) { p.Disk.SizeMiB = 0 }, "preflight.disk.size_mib: must be from 1 to 65536, got 0"},
		{"duration short", func(p *Preflight) { p.Disk.Duration = time.Millisecond }, "preflight.disk.duration: must be from 100ms to 10m0s, got 1ms"},
		{"block unaligned", func(p *Preflight) { p.Disk.BlockSize = 512 }, "preflight.disk.block_size: must be a multiple of 4096"},
		{"block 1MiB", func(p *Preflight) { p.Disk.BlockSize = 1 << 20 }, ""},
		{"block over size", func(p *Preflight) { p.Disk.SizeMiB, p.Disk.BlockSize = 1, 1<<20+4096 }, "preflight.disk.block_size"},
		{"pattern", func(p *Preflight) { p.Disk.Pattern = "seqread" }, `preflight.disk.pattern: must be randread, randwrite or randrw, got "seqread"`},
		{"randread", func(p *Preflight) { p.Disk.Pattern = "randread" }, ""},
		{"depth zero", func(p *Preflight) { p.Disk.Depth = 0 }, "preflight.disk.depth: must be from 1 to 64, got 0"},
		{"p99 negative", func(p *Preflight) { p.Disk.MaxP99 = -time.Millisecond }, "preflight.disk.max_p99: must not be negative"},
		{"p99 own", func(p *Preflight) { p.Disk.MaxP99 = 20 * time.Millisecond }, ""},
		{"throughput NaN", func(p *Preflight) { p.Disk.MinMiBPerSecond = math.NaN() }, "preflight.disk.min_mib_per_second"},
		{"throughput goal", func(p *Preflight) { p.Disk.MinMiBPerSecond = 100 }, ""},
		{"timeout under duration", func(p *Preflight) { p.Disk.Duration, p.Disk.Timeout = 10*time.Second, 5*time.Second },
			"preflight.disk.timeout: must be longer than preflight.disk.duration (10s), got 5s"},
		{"peers", func(p *Preflight) { p.Network.Peers = []string{"10.0.0.2:7000", "db-3:9042", "[::1]:7000"} }, ""},
		{"peer no port", func(p *Preflight) { p.Network.Peers = []string{"10.0.0.2"} }, `preflight.network.peers: must be host:port, like "10.0.0.2:7000", got "10.0.0.2"`},
		{"peer no host", func(p *Preflight) { p.Network.Peers = []string{":7000"} }, "preflight.network.peers: must be host:port"},
		{"peer named port", func(p *Preflight) { p.Network.Peers = []string{"db:cql"} }, `preflight.network.peers: port must be a number from 1 to 65535, got "cql" in "db:cql"`},
		{"attempts zero", func(p *Preflight) { p.Network.Attempts = 0 }, "preflight.network.attempts: must be from 1 to 1000, got 0"},
		{"net timeout zero", func(p *Preflight) { p.Network.Timeout = 0 }, "preflight.network.timeout"},
		{"connect goal zero", func(p *Preflight) { p.Network.MaxConnectP99 = 0 }, "preflight.network.max_connect_p99: must be positive, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c.Preflight)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate = nil, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate = %q, want it to contain %q", err, tt.want)
			}
			// Every path reported is a setting.
			var errs Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					if !slices.Contains(Paths(), e.Path) {
						t.Errorf("Validate reports %q, which is not a setting", e.Path)
					}
				}
			}
		})
	}
}

func TestPreflightDefaults(t *testing.T) {
	p := Default().Preflight
	d, n := p.Disk, p.Network
	if d.SizeMiB != 64 || d.Duration != 5*time.Second || d.BlockSize != 4096 || d.Pattern != "randrw" || d.Depth != 1 ||
		d.MaxP99 != 0 || d.MinMiBPerSecond != 0 || d.Timeout != time.Minute {
		t.Errorf("preflight.disk defaults %+v", d)
	}
	if !n.Manager || n.Attempts != 10 || n.Timeout != 2*time.Second || n.MaxConnectP99 != 100*time.Millisecond || !p.BPF {
		t.Errorf("preflight defaults %+v", p)
	}
}

func TestParsePreflight(t *testing.T) {
	cfg, err := Parse([]byte("preflight:\n  mounts: [/data]\n  disk:\n    size_mib: 8\n    max_p99: 20ms\n  network:\n    peers: [10.0.0.2:7000]\n  bpf: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Preflight
	if !slices.Equal(p.Mounts, []string{"/data"}) || p.Disk.SizeMiB != 8 || p.Disk.MaxP99 != 20*time.Millisecond ||
		p.Disk.Duration != 5*time.Second || !slices.Equal(p.Network.Peers, []string{"10.0.0.2:7000"}) || p.BPF {
		t.Errorf("parsed %+v", p)
	}
	if got, want := Changed(Default(), cfg), []string{"preflight.mounts", "preflight.disk.size_mib", "preflight.disk.max_p99", "preflight.network.peers", "preflight.bpf"}; !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}
