package kernel

import (
	"github.com/nervehq/nerve/internal/mountinfo"

	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseCapEff(t *testing.T) {
	tests := []struct {
		file    string
		want    uint64
		wantErr string
	}{
		{file: "status-root", want: 0x1ffffffffff},
		{file: "status-nobody", want: 0},
		{file: "status-bpf-perfmon", want: 1<<capBPF | 1<<capPerfmon},
		{file: "status-bpf-only", want: 1 << capBPF},
		{file: "status-no-capeff", wantErr: "no CapEff line"},
		{file: "status-bad-hex", wantErr: `CapEff "00000zzz"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseCapEff(open(t, tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCapEff = %#x, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseCapEff = %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestCheckCaps(t *testing.T) {
	tests := []struct {
		name    string
		eff     uint64
		wantErr string // "" = enough privileges
	}{
		{name: "root", eff: 0x1ffffffffff},
		{name: "sys_admin only", eff: 1 << capSysAdmin},
		{name: "bpf and perfmon", eff: 1<<capBPF | 1<<capPerfmon},
		{name: "none", eff: 0, wantErr: "uid 65534 has effective capabilities 0x0000000000000000, missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"},
		{name: "bpf only", eff: 1 << capBPF, wantErr: "missing CAP_PERFMON (or CAP_SYS_ADMIN)"},
		{name: "perfmon only", eff: 1 << capPerfmon, wantErr: "missing CAP_BPF (or CAP_SYS_ADMIN)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCaps(tt.eff, 65534)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkCaps(%#x) = %v, want nil", tt.eff, err)
				}
				return
			}
			if !errors.Is(err, ErrPrivileges) {
				t.Errorf("checkCaps(%#x) = %v, want ErrPrivileges", tt.eff, err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("checkCaps(%#x) = %v, want it to contain %q", tt.eff, err, tt.wantErr)
			}
		})
	}
}

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		file    string
		want    []mountinfo.Mount // checked as a subset, in order (Point and FSType)
		wantErr string
	}{
		{file: "mountinfo-mounted", want: []mountinfo.Mount{
			{Point: "/proc", FSType: "proc"},
			{Point: "/sys/kernel/tracing", FSType: "tracefs"}, // optional field shared:18
			{Point: "/sys/fs/bpf", FSType: "bpf"},             // two optional fields
		}},
		{file: "mountinfo-stacked", want: []mountinfo.Mount{
			{Point: "/sys/fs/bpf", FSType: "bpf"},
			{Point: "/sys/fs/bpf", FSType: "tmpfs"},
			{Point: "/mnt/with space", FSType: "tmpfs"},
		}},
		{file: "mountinfo-malformed", wantErr: "mountinfo line 1: malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := mountinfo.Parse(open(t, tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("mountinfo.Parse = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for _, m := range got {
				if i < len(tt.want) && m.Point == tt.want[i].Point && m.FSType == tt.want[i].FSType {
					i++
				}
			}
			if i < len(tt.want) {
				t.Errorf("mountinfo.Parse = %v, lacks %v (in order)", got, tt.want[i])
			}
		})
	}
}

func TestEnsureMounts(t *testing.T) {
	exists := func(string) (os.FileInfo, error) { return nil, nil }
	missing := func(string) (os.FileInfo, error) { return nil, fs.ErrNotExist }
	tests := []struct {
		name      string
		mountinfo string
		stat      func(string) (os.FileInfo, error)
		mountErr  error
		wantCalls []string
		wantErr   string
	}{
		{name: "both mounted", mountinfo: "mountinfo-mounted", stat: exists},
		{name: "neither mounted", mountinfo: "mountinfo-bare", stat: exists,
			wantCalls: []string{"tracefs /sys/kernel/tracing", "bpf /sys/fs/bpf mode=0700"}},
		{name: "other fs on top", mountinfo: "mountinfo-stacked", stat: exists,
			wantErr: "/sys/fs/bpf has tmpfs mounted on it, want bpf"},
		{name: "no mount point", mountinfo: "mountinfo-bare", stat: missing,
			wantErr: "mount tracefs at /sys/kernel/tracing: the mount point does not exist"},
		{name: "mount refused", mountinfo: "mountinfo-bare", stat: exists, mountErr: unix.EPERM,
			wantCalls: []string{"tracefs /sys/kernel/tracing"},
			wantErr:   "mount tracefs at /sys/kernel/tracing (tracepoint probes read event ids from it): operation not permitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := mountinfo.Parse(open(t, tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			mount := func(source, point, fstype, data string) error {
				calls = append(calls, strings.TrimSpace(fstype+" "+point+" "+data))
				if source != fstype {
					t.Errorf("mount source %q, want %q", source, fstype)
				}
				return tt.mountErr
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			err = ensureMounts(logger, mounts, tt.stat, mount)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ensureMounts = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ensureMounts = %v, want error containing %q", err, tt.wantErr)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("mount calls = %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}

// sample is what Detect could return on a kernel without kprobes and fentry.
func sample() *Features {
	return &Features{
		Release:     "6.18.0",
		BTF:         Feature{Name: "btf"},
		TPBTF:       Feature{Name: "tp_btf"},
		RawTP:       Feature{Name: "raw_tp"},
		Tracepoint:  Feature{Name: "tracepoint"},
		RingBuf:     Feature{Name: "ringbuf"},
		TaskStorage: Feature{Name: "task_storage"},
		Kprobes:     Feature{Name: "kprobe", Err: errors.New("no kprobe_events")},
		Fentry:      Feature{Name: "fentry", Err: errors.New("operation not permitted")},
		UprobeMulti: Feature{Name: "uprobe_multi"},
		BPFStats:    Feature{Name: "bpf_stats"},
	}
}

func TestTable(t *testing.T) {
	got := sample().Table()
	if n := strings.Count(got, "\n"); n != 11 {
		t.Errorf("Table() has %d lines, want 11 (release and 10 features):\n%s", n, got)
	}
	for _, want := range []string{
		"kernel        6.18.0\n",
		"btf           yes\n",
		"task_storage  yes\n",
		"fentry        no: operation not permitted\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Table() =\n%s\nlacks %q", got, want)
		}
	}
}

func TestLog(t *testing.T) {
	f := sample()
	var b strings.Builder
	f.Log(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	got := b.String()
	if n := strings.Count(got, "\n"); n != 1 {
		t.Errorf("Log wrote %d lines, want 1:\n%s", n, got)
	}
	for _, want := range []string{`msg="kernel features"`, "release=6.18.0", "btf=yes", `kprobe="no: no kprobe_events"`} {
		if !strings.Contains(got, want) {
			t.Errorf("Log wrote %q, lacks %q", got, want)
		}
	}
}
