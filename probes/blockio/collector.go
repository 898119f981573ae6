package blockio

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	serviceDesc = prometheus.NewDesc("nerve_block_service_seconds",
		"Block request service time: issue to the driver until completion, excluding any queueing before issue, by the number of requests already in flight on the disk at issue (inflight=\"0\" is the drive's own latency, free of load).",
		[]string{"device", "op", "inflight"}, nil)
	queueDesc = prometheus.NewDesc("nerve_block_queue_seconds",
		"Block request queue time: from submission (including waits for a request or driver tag) until issue to the driver.",
		[]string{"device", "op"}, nil)
	requestsDesc = prometheus.NewDesc("nerve_block_requests_total",
		"Block requests completed.", []string{"device", "op"}, nil)
	errorsDesc = prometheus.NewDesc("nerve_block_errors_total",
		"Block requests completed with an error status.", []string{"device", "op"}, nil)
	queueUnknownDesc = prometheus.NewDesc("nerve_block_queue_time_unknown_total",
		"Block requests issued without a usable queue start time (no elevator, I/O statistics off and no tag wait).",
		[]string{"device", "op"}, nil)
	inflightDesc = prometheus.NewDesc("nerve_block_inflight_requests",
		"Block requests issued to the driver and not yet completed, as seen by the probe.", []string{"device"}, nil)
	dropsDesc = prometheus.NewDesc("nerve_probe_drops_total",
		"Events a probe lost, by reason.", []string{"probe", "reason"}, nil)
	mapEntriesDesc = prometheus.NewDesc("nerve_bpf_map_entries",
		"Entries in use in a BPF map.", []string{"probe", "map"}, nil)
	mapCapacityDesc = prometheus.NewDesc("nerve_bpf_map_capacity",
		"Maximum entries of a BPF map.", []string{"probe", "map"}, nil)
	infoDesc = prometheus.NewDesc("nerve_block_probe_info",
		"How the block I/O probe runs: the kernel hooks it uses and whether queue time includes waits for a driver tag.",
		[]string{"mode", "tag_waits"}, nil)
)

// mapFill is a map's use against its capacity.
type mapFill struct {
	name              string
	entries, capacity int
}

// collector turns snapshots into metrics; it is apart from Probe so that it
// can be tested on recorded snapshots.
type collector struct {
	perOctave int
	mode      Mode
	tagWaits  bool
	snapshot  func() (*Snapshot, error)
	maps      func() []mapFill
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{serviceDesc, queueDesc, requestsDesc, errorsDesc,
		queueUnknownDesc, inflightDesc, dropsDesc, mapEntriesDesc, mapCapacityDesc, infoDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.snapshot()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(serviceDesc, err)
		return
	}
	tw := "false"
	if c.tagWaits {
		tw = "true"
	}
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, string(c.mode), tw)
	for reason, n := range s.Drops {
		ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(n), "blockio", reason)
	}
	for _, m := range c.maps() {
		if m.entries >= 0 {
			ch <- prometheus.MustNewConstMetric(mapEntriesDesc, prometheus.GaugeValue, float64(m.entries), "blockio", m.name)
		}
		ch <- prometheus.MustNewConstMetric(mapCapacityDesc, prometheus.GaugeValue, float64(m.capacity), "blockio", m.name)
	}
	for i := range s.Devices {
		d := &s.Devices[i]
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(max(d.Inflight, 0)), d.Name)
		for op := Op(0); op < numOps; op++ {
			o := &d.Ops[op]
			if o.Requests == 0 && o.Queue.Count() == 0 && o.QueueUnknown == 0 {
				continue // keep series bounded to what the device really does
			}
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(o.Requests), d.Name, op.String())
			ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(o.Errors), d.Name, op.String())
			ch <- prometheus.MustNewConstMetric(queueUnknownDesc, prometheus.CounterValue, float64(o.QueueUnknown), d.Name, op.String())
			if o.Queue.Count() > 0 {
				ch <- o.Queue.Metric(queueDesc, c.perOctave, d.Name, op.String())
			}
			for cl := InflightClass(0); cl < numClasses; cl++ {
				if o.Service[cl].Count() > 0 {
					ch <- o.Service[cl].Metric(serviceDesc, c.perOctave, d.Name, op.String(), cl.String())
				}
			}
		}
	}
}

// Describe implements prometheus.Collector.
func (p *Probe) Describe(ch chan<- *prometheus.Desc) { p.collector().Describe(ch) }

// Collect implements prometheus.Collector; it reads the kernel maps at scrape time.
func (p *Probe) Collect(ch chan<- prometheus.Metric) { p.collector().Collect(ch) }

func (p *Probe) collector() *collector {
	return &collector{
		perOctave: p.cfg.BucketsPerOctave,
		mode:      p.mode,
		tagWaits:  p.tagWaits,
		snapshot:  p.Snapshot,
		maps:      p.mapFill,
	}
}

func (p *Probe) mapFill() []mapFill {
	var out []mapFill
	if p.requests != nil {
		n, err := p.requestMapEntries()
		if err != nil {
			p.logger.Warn("count request map entries", "err", err)
			n = -1
		}
		out = append(out, mapFill{"block_requests", n, int(p.requests.MaxEntries())})
	}
	if p.devices != nil {
		s, err := p.Snapshot()
		n := -1
		if err == nil {
			n = len(s.Devices)
		}
		out = append(out, mapFill{"block_devices", n, int(p.devices.MaxEntries())})
	}
	return out
}
