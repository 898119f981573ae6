//go:build 386 || amd64

package pagefault

import (
	"time"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
)

// decoder turns one pagefault_outliers record into an event, its file not
// yet resolved.
func decoder() func(raw []byte, clock outlier.Clock) (flight.Event, error) {
	return func(raw []byte, clock outlier.Clock) (flight.Event, error) {
		var o pagefaultPfOutlier
		if err := outlier.Decode(raw, &o); err != nil {
			return flight.Event{}, err
		}
		return flight.Event{
			Signal:    flight.PageFault,
			Time:      clock.Wall(o.TsNs),
			Latency:   time.Duration(o.StallNs),
			PID:       int(o.Tgid),
			TID:       int(o.Pid),
			Comm:      outlier.CString(o.Comm[:]),
			CgroupID:  o.CgroupId,
			PageFault: &flight.PageFaultEvent{Address: o.Address},
		}, nil
	}
}
