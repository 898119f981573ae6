//go:build 386 || amd64

package probe

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

func TestChooseMode(t *testing.T) {
	old := haveUprobeMulti
	defer func() { haveUprobeMulti = old }()
	missing := ebpf.ErrNotSupported
	for _, tt := range []struct {
		want   AttachMode
		kernel error // what the feature test says
		mode   AttachMode
		why    bool
	}{
		{want: AttachAuto, mode: AttachUprobeMulti},
		{want: AttachAuto, kernel: missing, mode: AttachUprobe, why: true},
		{want: AttachUprobeMulti, mode: AttachUprobeMulti},
		{want: AttachUprobeMulti, kernel: missing, mode: "", why: true},
		{want: AttachUprobe, mode: AttachUprobe},
		{want: AttachUprobe, kernel: missing, mode: AttachUprobe},
	} {
		haveUprobeMulti = func() error { return tt.kernel }
		mode, why := chooseMode(tt.want)
		if mode != tt.mode || (why != nil) != tt.why {
			t.Errorf("chooseMode(%s) with uprobe_multi %v = %q, %v; want %q, reason %v", tt.want, tt.kernel, mode, why, tt.mode, tt.why)
		}
		if why != nil && !errors.Is(why, missing) {
			t.Errorf("chooseMode(%s): reason %v does not wrap the feature test's", tt.want, why)
		}
	}
}

func TestAttachModeChecked(t *testing.T) {
	_, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Attach: "kprobe"})
	if err == nil || !strings.Contains(err.Error(), `"kprobe"`) {
		t.Errorf("New with attach kprobe: %v, want an error naming it", err)
	}
}
