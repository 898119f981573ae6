package runqueue

import (
	"time"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
)

// startOutliers starts the reader of runqueue_outliers; Close stops it.
func (p *Probe) startOutliers() (*outlier.Reader, error) {
	clock := outlier.NewClock()
	sink := p.cfg.Outliers
	return outlier.Start(p.logger, p.objs.RunqueueOutliers, func(raw []byte) {
		var o runqueueRunqOutlier
		if err := outlier.Decode(raw, &o); err != nil {
			p.logger.Warn("decode run-queue outlier", "err", err)
			return
		}
		sink.Record(outlierEvent(&o, clock))
	})
}

func outlierEvent(o *runqueueRunqOutlier, clock outlier.Clock) flight.Event {
	return flight.Event{
		Signal:   flight.RunQueue,
		Time:     clock.Wall(o.TsNs),
		Latency:  time.Duration(o.DelayNs),
		PID:      int(o.Tgid),
		TID:      int(o.Pid),
		Comm:     outlier.CString(o.Comm[:]),
		CgroupID: o.CgroupId,
		RunQueue: &flight.RunQueueEvent{
			CPU:      int(o.Cpu),
			PrevPID:  int(o.PrevTgid),
			PrevTID:  int(o.PrevPid),
			PrevComm: outlier.CString(o.PrevComm[:]),
		},
	}
}

// OutlierDrops counts the outliers the kernel could not deliver since the
// probe started, read now; zero without BPF or when the counters cannot be
// read.
func (p *Probe) OutlierDrops() flight.Drops {
	if !p.bpf {
		return flight.Drops{}
	}
	d, err := outlier.ReadDrops(p.objs.OutlierDrops)
	if err != nil {
		p.logger.Warn("read outlier drops", "err", err)
	}
	return d
}
