//go:build 386 || amd64

package probe

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nervehq/nerve/jvm/thrash"
)

func TestStoppedFraction(t *testing.T) {
	s := &jvmState{pauses: []Pause{
		{Start: 1 * time.Second, End: 2 * time.Second},   // outside a 10 s window ending at 20 s
		{Start: 9 * time.Second, End: 11 * time.Second},  // half inside
		{Start: 15 * time.Second, End: 16 * time.Second}, // inside
	}}
	if got := s.stoppedFraction(20*time.Second, 10*time.Second); math.Abs(got-0.2) > 1e-9 {
		t.Errorf("stopped fraction = %g, want 0.2", got)
	}
}

// Series follow the JVMs: a label's series go with its last JVM.
func TestAggregatorForget(t *testing.T) {
	a := newAggregator(thrash.DefaultConfig())
	for pid, label := range map[int]string{10: "cassandra", 11: "cassandra", 12: "sidecar"} {
		a.add(Pause{PID: pid, Label: label, Kind: Safepoint, Start: time.Second, End: time.Second + 5*time.Millisecond})
		a.add(Pause{PID: pid, Label: label, Kind: VMOperation, Operation: "G1CollectFull", Start: time.Second + time.Millisecond, End: time.Second + 4*time.Millisecond})
	}
	count := func() int { return testutil.CollectAndCount(a.safepoint) }
	if count() != 2 {
		t.Fatalf("%d safepoint series, want 2", count())
	}
	a.forget(10)
	if count() != 2 {
		t.Errorf("forgetting one of two cassandra JVMs dropped its series")
	}
	a.forget(11)
	a.forget(12)
	if count() != 0 {
		t.Errorf("%d safepoint series left after every JVM exited", count())
	}
	if n := testutil.CollectAndCount(a.vmop); n != 0 {
		t.Errorf("%d VM operation series left", n)
	}
}

func TestOperationLabelBounded(t *testing.T) {
	a := newAggregator(thrash.DefaultConfig())
	for i := 0; i < 3*maxOperations; i++ {
		a.add(Pause{PID: 1, Label: "x", Kind: VMOperation, Operation: strings.Repeat("o", i+1), Start: 1, End: 2})
	}
	if n := testutil.CollectAndCount(a.vmop); n > maxOperations+1 {
		t.Errorf("%d operation series, want at most %d", n, maxOperations+1)
	}
}
