//go:build 386 || amd64

package probe

import (
	"github.com/nervehq/nerve/probes/flight"
)

// outlierEvent is a safepoint at least Config.OutlierPause long.
func (p *Probe) outlierEvent(pause Pause, sp safepointOps, who goneJVM) flight.Event {
	return flight.Event{
		Signal:   flight.Safepoint,
		Time:     p.clock.Wall(uint64(pause.End)),
		Latency:  pause.Duration(),
		PID:      pause.PID,
		Comm:     who.comm,
		CgroupID: who.cgroupID,
		Safepoint: &flight.SafepointEvent{
			JVM:             pause.Label,
			VMOperation:     sp.names,
			TimeToSafepoint: sp.tts,
			Pause:           pause.Duration(),
		},
	}
}

// OutlierDrops counts the pause events the kernel could not send because
// the ring buffer was full (Lost), read now: any of them may have been an
// outlier. Safepoints are not rate-limited: there are at most a few hundred
// a second.
func (p *Probe) OutlierDrops() flight.Drops {
	var perCPU []uint64
	if err := p.maps.JvmDrops.Lookup(uint32(jvmJvmDropJVM_DROP_RINGBUF), &perCPU); err != nil {
		p.logger.Warn("read JVM drops", "err", err)
		return flight.Drops{}
	}
	var d flight.Drops
	for _, n := range perCPU {
		d.Lost += n
	}
	return d
}
