package blockio

import (
	"log/slog"
	"os"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/nervehq/nerve/internal/privtest"
)

func TestSmoke(t *testing.T) {
	privtest.Root(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	p, err := New(slog.New(slog.NewTextHandler(os.Stderr, nil)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f, err := os.CreateTemp("", "smoke")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	for i := 0; i < 50; i++ {
		f.Write(make([]byte, 4096))
		f.Sync()
	}
	s, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range s.Devices {
		for op := Op(0); op < numOps; op++ {
			o := d.Ops[op]
			if o.Requests > 0 {
				h := d.ServiceAll(op)
				t.Logf("%s %s req=%d svc p50=%.0fns queue n=%d p50=%.0fns unknown=%d", d.Name, op, o.Requests, h.Quantile(0.5), o.Queue.Count(), o.Queue.Quantile(0.5), o.QueueUnknown)
			}
		}
	}
	t.Logf("drops %v mode %s tagwaits %v", s.Drops, p.Mode(), p.TagWaits())
}
