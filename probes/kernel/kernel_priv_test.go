package kernel

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/internal/privtest"
)

// TestDetectHere checks Detect on the machine the tests run on, which the
// project's CI and VMs keep at a kernel with BTF, tp_btf and raw_tp.
func TestDetectHere(t *testing.T) {
	privtest.Root(t)
	if err := CheckPrivileges(); err != nil {
		t.Fatal(err)
	}
	if err := EnsureMounts(slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	if err := CheckBTF(); err != nil {
		t.Fatal(err)
	}
	f := Detect()
	t.Logf("\n%s", f.Table())
	for _, ft := range []Feature{f.BTF, f.TPBTF, f.RawTP, f.Tracepoint, f.RingBuf} {
		if !ft.OK() {
			t.Errorf("%s: %v", ft.Name, ft.Err)
		}
	}
	for _, ft := range f.All() {
		if ft.Name == "" {
			t.Errorf("a feature has no name: %+v", ft)
		}
	}
	if f.Release == "" || f.Release == "unknown" {
		t.Errorf("Release = %q", f.Release)
	}
	if Detect() != f {
		t.Error("second Detect probed again instead of returning the cached answer")
	}
}
