package diagnose

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nervehq/nerve/actuator"
	"github.com/nervehq/nerve/actuator/goals"
)

// FuzzStep feeds random samples, made from the input four bytes at a time,
// and checks that the engine does not panic, that Changes alternate for
// each rule (no enter twice, no clear of what does not hold), that entered
// diagnoses carry evidence, and that Active() is what the Changes say.
func FuzzStep(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 0x33, 0x44, 0x55, 5, 0x33, 0x44, 0x55, 5, 0x33, 0x44, 0x55, 5, 0x33, 0x44, 0x55})
	f.Add([]byte("slow drive, heavy load, thrash, canary errors and goals that change"))
	figures := []float64{math.NaN(), 0, 0.001, 0.008, 0.04, 0.07, 0.15, 0.6, 2}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := New(goals.Default())
		holds := map[string]bool{} // by "kind subject", from the Changes
		now := t0
		for i := 0; i+4 <= len(data); i += 4 {
			b := data[i : i+4]
			// Time mostly moves on a tick, sometimes stands still or
			// jumps.
			now = now.Add(time.Duration(b[0]%16) * 5 * time.Second)
			pick := func(x byte) float64 { return figures[int(x)%len(figures)] }
			s := actuator.Sample{
				At:                now,
				RunQueueP99:       pick(b[1] >> 4),
				PageFaultStallP99: pick(b[2] >> 4),
				Devices: map[string]actuator.DeviceSample{
					[]string{"sda", "sdb"}[b[0]>>4&1]: {ServiceIdleP99: pick(b[1]), ServiceIdleN: uint64(b[2] % 40), QueueP99: pick(b[3])},
				},
				Context: map[string]float64{"i": float64(i)},
			}
			if b[0]&0x20 != 0 {
				s.JVMs = map[int]actuator.JVMSample{}
				if b[3]&0x80 != 0 {
					s.JVMs[int(b[3]>>6&1)] = actuator.JVMSample{Label: "cassandra", StoppedFraction: pick(b[3] >> 2), ThrashOver: b[2]&0x80 != 0}
				}
			}
			if b[0]&0x40 != 0 {
				res := actuator.CanaryResult{Mount: "/data1", Latency: time.Duration(b[1]) * 50 * time.Millisecond}
				if b[1]&1 != 0 {
					res.Err = "EIO"
				}
				s.Canaries = map[string]actuator.CanaryResult{"/data1": res}
			}
			if b[0]&0x80 != 0 && b[1]&0x0f == 0 {
				g := goals.Default()
				g.Disk.QueueP99.For, g.CPU.RunQueueP99.ClearFor, g.Canary.Failures = 0, 0, 1+int(b[2]%4)
				e.SetGoals(g)
			}

			for _, c := range e.Step(s) {
				d := c.Diagnosis
				k := fmt.Sprint(d.Kind, " ", d.Subject)
				if c.Entered == holds[k] {
					t.Fatalf("sample %d: change %+v, but it held: %v", i/4, c, holds[k])
				}
				if c.Entered && len(d.Evidence) == 0 {
					t.Fatalf("sample %d: %s entered without evidence", i/4, k)
				}
				if d.Context["i"] != float64(i) {
					t.Fatalf("sample %d: %s does not carry the sample's context: %v", i/4, k, d.Context)
				}
				holds[k] = c.Entered
			}
			var want, got []string
			for k, h := range holds {
				if h {
					want = append(want, k)
				}
			}
			for _, d := range e.Active() {
				got = append(got, fmt.Sprint(d.Kind, " ", d.Subject))
			}
			slices.Sort(want)
			if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, want) {
				t.Fatalf("sample %d: Active() = %v, the changes say %v", i/4, got, want)
			}
		}
	})
}
