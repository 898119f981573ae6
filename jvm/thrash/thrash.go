package thrash

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults: jvmquake's.
const (
	DefaultThreshold = 30 * time.Second
	DefaultWeight    = 5.0
)

// Config sets the token bucket. Both fields must be positive: there are no
// implicit defaults, so start from DefaultConfig.
type Config struct {
	// Threshold is the bucket level, in stopped time, above which the
	// detector is over.
	Threshold time.Duration
	// Weight is how much stopped time one unit of running time drains from
	// the bucket. It sets the stopped fraction above which the bucket grows:
	// Weight/(1+Weight) (CriticalFraction).
	Weight float64
}

// DefaultConfig returns jvmquake's defaults: 30 s, weight 5.
func DefaultConfig() Config {
	return Config{Threshold: DefaultThreshold, Weight: DefaultWeight}
}

// Validate reports every field that is not a positive (finite) value, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Threshold <= 0 {
		errs = append(errs, fmt.Errorf("thrash: Threshold must be positive, got %v", c.Threshold))
	}
	if !(c.Weight > 0) || math.IsInf(c.Weight, 1) {
		errs = append(errs, fmt.Errorf("thrash: Weight must be a positive number, got %v", c.Weight))
	}
	return errors.Join(errs...)
}

// CriticalFraction is the share of wall time stopped at which draining
// balances filling: Weight/(1+Weight). Sustained above it, the bucket grows
// until the detector is over; below it, only a single pause longer than
// Threshold makes it over.
func (c Config) CriticalFraction() float64 { return c.Weight / (1 + c.Weight) }

// Event is one crossing of the threshold.
type Event struct {
	// At is when the crossing happened: the end of the pause that took the
	// bucket over, or the instant during running time when draining took it
	// back to Threshold.
	At time.Time
	// Level is the bucket level at At.
	Level time.Duration
	// Over is the state after the crossing.
	Over bool
}

// subscriberBuffer is how many crossings a subscriber's channel holds.
const subscriberBuffer = 16

// Detector is the token bucket of one JVM. It is safe for concurrent use.
type Detector struct {
	cfg Config // set by New, never changed

	mu sync.Mutex
	// The bucket as of lastEnd; after it, its level is computed, not stored,
	// so reading it needs no clock and never changes the bucket.
	level   time.Duration // guarded by mu
	lastEnd time.Time     // guarded by mu: end of the latest pause counted
	seen    bool          // guarded by mu: whether any pause was counted
	over    bool          // guarded by mu: the state the last Event reported
	subs    []chan Event  // guarded by mu
}

// New returns an empty detector, or the Validate error.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg}, nil
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// Pause records one stop-the-world pause from start to end, and is when the
// detector can go over: like jvmquake, it looks at the bucket at the end of
// each pause.
//
// Pauses are meant to come in order and not overlap, as a JVM's safepoints
// do. When they do not, stop time is counted at most once and never before
// the latest pause end already counted: the part of a pause before that end
// is dropped, so a pause that overlaps the previous one counts only for its
// remainder, and a pause that ends before it (late, repeated, or with its
// end before its start) changes nothing. Dropping, rather than adding late
// stop time into a past the bucket has already drained, means the level is
// never higher, once they have all ended, than the same stop time given in
// order would make it: a disordered feed can delay the detector but never
// make it fire early.
func (d *Detector) Pause(start, end time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen && start.Before(d.lastEnd) {
		start = d.lastEnd
	}
	if !end.After(start) {
		return
	}
	if d.seen {
		// Running time since the last pause drains the bucket, which may
		// have taken it back below the threshold before this pause began.
		d.observe(start)
		d.level = d.drained(start)
	}
	d.level = addSat(d.level, end.Sub(start))
	d.lastEnd, d.seen = end, true
	if !d.over && d.level > d.cfg.Threshold {
		d.over = true
		d.send(Event{At: end, Level: d.level, Over: true})
	}
}

// Level returns the bucket level as of now: as of the latest pause end,
// drained for the running time since. For a now before that end it returns
// the level at that end; the detector keeps no history.
//
// Level and Over also send the downward crossing, if draining since the
// latest pause took the bucket back to the threshold by now: no pause marks
// that moment, so it is noticed when asked about (or at the next pause).
// Events follow the latest time asked about: once the crossing down is sent,
// asking about an earlier time, when the bucket was still over, sends
// nothing, though Level and Over answer for that time.
func (d *Detector) Level(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observe(now)
	return d.drained(now)
}

// Over reports whether the bucket is above the threshold as of now; see
// Level.
func (d *Detector) Over(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observe(now)
	return d.drained(now) > d.cfg.Threshold
}

// Subscribe returns a channel that receives an Event each time the detector
// crosses the threshold, up or down, alternately, in the order the detector
// learns of them. Sends never block the detector: when the channel's buffer
// (16) is full, the oldest Event in it is dropped to make room, so a slow
// reader misses intermediate crossings, but the last Event in the channel is
// always the latest crossing, and Level and Over always give the current
// state. The channel is never closed; it lives as long as the detector.
//
// The At times increase, except in one case: a pause that began before a
// time Level or Over was asked about, and before the crossing down that call
// sent, shows the JVM was not running after all; the crossing up it may cause
// is stamped with its end, which can be earlier than that crossing down. A
// caller that asks about the wall clock while pause events lag behind it can
// see this near the threshold.
func (d *Detector) Subscribe() <-chan Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan Event, subscriberBuffer)
	d.subs = append(d.subs, ch)
	return ch
}

// drained is the bucket level at t, for t at or after lastEnd. d.mu is held.
func (d *Detector) drained(t time.Time) time.Duration {
	if !d.seen || !t.After(d.lastEnd) {
		return d.level
	}
	return drain(d.level, t.Sub(d.lastEnd), d.cfg.Weight)
}

// observe sends the downward crossing if the bucket drained to the
// threshold between lastEnd and t, stamped with the instant it did. d.mu is
// held.
func (d *Detector) observe(t time.Time) {
	if !d.over || d.drained(t) > d.cfg.Threshold {
		return
	}
	d.over = false
	// The first instant of running time at which the level is at or below
	// the threshold: rounded up, so that the Event's level is not above it.
	// It is no later than t, which also bounds the float before converting.
	dt := t.Sub(d.lastEnd)
	if x := math.Ceil(float64(d.level-d.cfg.Threshold) / d.cfg.Weight); x < float64(dt) {
		dt = time.Duration(x)
	}
	at := d.lastEnd.Add(dt)
	d.send(Event{At: at, Level: d.drained(at), Over: false})
}

// send delivers e to every subscriber without blocking. d.mu is held, so
// senders do not race each other, and a full channel, once it has given up
// its oldest Event, has room for e.
func (d *Detector) send(e Event) {
	for _, ch := range d.subs {
		select {
		case ch <- e:
			continue
		default:
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- e:
		default:
		}
	}
}

// drain is level less running×weight, floored at zero.
func drain(level, running time.Duration, weight float64) time.Duration {
	if running <= 0 {
		return level
	}
	dr := float64(running) * weight
	if dr >= float64(level) {
		return 0
	}
	// dr < level, so it converts without overflow and the result is not negative.
	return level - time.Duration(dr)
}

// addSat is a+b for non-negative a and b, saturating instead of overflowing.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
