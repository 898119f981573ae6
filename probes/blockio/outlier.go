package blockio

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
)

// startOutliers starts the reader of block_outliers; Close stops it.
func (p *Probe) startOutliers() error {
	clock := outlier.NewClock()
	names := newComms("/proc")
	sink := p.cfg.Outliers
	r, err := outlier.Start(p.logger, p.outlierRB, func(raw []byte) {
		var o blockioBlockOutlier
		if err := outlier.Decode(raw, &o); err != nil {
			p.logger.Warn("decode block outlier", "err", err)
			return
		}
		sink.Record(p.outlierEvent(&o, clock, names))
	})
	if err != nil {
		return err
	}
	p.outliers = r
	return nil
}

func (p *Probe) outlierEvent(o *blockioBlockOutlier, clock outlier.Clock, names *comms) flight.Event {
	return flight.Event{
		Signal:   flight.BlockIO,
		Time:     clock.Wall(o.TsNs),
		Latency:  time.Duration(o.QueueNs + o.ServiceNs),
		PID:      int(o.Tgid),
		TID:      int(o.Pid),
		Comm:     names.name(o.Tgid, o.Pid),
		CgroupID: o.CgroupId,
		Block: &flight.BlockEvent{
			Device:   p.names.name(o.Dev),
			Op:       Op(o.Op).String(),
			Sector:   o.Sector,
			Bytes:    o.Bytes,
			Queue:    time.Duration(o.QueueNs),
			Service:  time.Duration(o.ServiceNs),
			Inflight: o.Inflight,
		},
	}
}

// OutlierDrops counts the outliers the kernel could not deliver since the
// probe started, read now; zero when the counters cannot be read.
func (p *Probe) OutlierDrops() flight.Drops {
	d, err := outlier.ReadDrops(p.outlierDr)
	if err != nil {
		p.logger.Warn("read outlier drops", "err", err)
	}
	return d
}

// commTTL is how long a task's name is trusted: a task renames itself
// rarely, and a pid is not reused within a second on any real machine.
const commTTL = time.Second

// comms names tasks from /proc/<tgid>/task/<pid>/comm. The BPF side stores
// only the issuing task's ids (16 bytes of comm per issue would cost every
// request); a task that has exited by the time its outlier is read is
// named "?". Used by the reader goroutine only.
type comms struct {
	proc  string
	cache map[uint32]commEntry // by thread id
}

type commEntry struct {
	comm string
	at   time.Time
}

func newComms(proc string) *comms { return &comms{proc: proc, cache: map[uint32]commEntry{}} }

func (c *comms) name(tgid, pid uint32) string {
	if pid == 0 {
		return "swapper" // the idle task: an interrupt issued it
	}
	now := time.Now()
	if e, ok := c.cache[pid]; ok && now.Sub(e.at) < commTTL {
		return e.comm
	}
	if len(c.cache) >= 4096 {
		for k, e := range c.cache {
			if now.Sub(e.at) >= commTTL {
				delete(c.cache, k)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(c.proc, strconv.Itoa(int(tgid)), "task", strconv.Itoa(int(pid)), "comm"))
	if err != nil {
		return "?" // gone; not cached, the pid may be reused
	}
	s := strings.TrimSuffix(string(b), "\n")
	if len(c.cache) < 4096 {
		c.cache[pid] = commEntry{comm: s, at: now}
	}
	return s
}
