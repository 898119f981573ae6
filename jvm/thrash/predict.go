package thrash

import (
	"math"
	"time"
)

// TimeToTrigger predicts, for tests and drills, how long a JVM takes to make
// a detector with this configuration go over, from an empty bucket, when it
// is stopped stoppedFraction of the time in pauses of pauseLen each: the wall
// time from the start of the first pause to the end of the pause that takes
// the bucket over (add the running time before the first pause, if the
// schedule starts with one). It returns false if the detector never goes
// over on that schedule, if the arguments mean no pauses (a fraction of 0 or
// less, or NaN; a pauseLen of 0 or less), if the configuration is invalid,
// or if the answer does not fit in a Duration; a fraction above 1 counts as
// 1, pauses back to back.
//
// The prediction is exact for a Detector fed the schedule
// start_k = t0 + (k−1)·(pauseLen+run), end_k = start_k + pauseLen, with run as
// Schedule computes it.
func (c Config) TimeToTrigger(stoppedFraction float64, pauseLen time.Duration) (time.Duration, bool) {
	if c.Validate() != nil {
		return 0, false
	}
	run, ok := Schedule(stoppedFraction, pauseLen)
	if !ok {
		return 0, false
	}
	p, h := pauseLen, c.Threshold
	if p > h {
		return p, true // the first pause
	}
	// What one running stretch leaves of one pause. When it is positive, each
	// cycle of running then pausing raises the level by it and the bucket never
	// empties on the way up: after pause k it holds p+(k−1)·net. Otherwise it
	// empties before every pause and holds p after each.
	net := drain(p, run, c.Weight)
	if net <= 0 {
		return 0, false
	}
	k := int64((h-p)/net) + 2 // the first k with p+(k−1)·net > h
	if float64(k)*float64(p+run) > math.MaxInt64/2 {
		return 0, false // not within the time a Duration holds
	}
	return time.Duration(k)*p + time.Duration(k-1)*run, true
}

// Schedule returns the running time between pauses of pauseLen that makes
// the JVM stopped stoppedFraction of the time: pauseLen·(1−f)/f, truncated
// to a nanosecond. It returns false for a fraction of 0 or less (or NaN), a
// pauseLen of 0 or less, or a running time too long for a Duration; a
// fraction above 1 counts as 1.
func Schedule(stoppedFraction float64, pauseLen time.Duration) (run time.Duration, ok bool) {
	f := stoppedFraction
	if !(f > 0) || pauseLen <= 0 {
		return 0, false
	}
	f = min(f, 1)
	r := float64(pauseLen) * (1 - f) / f
	if r >= math.MaxInt64 {
		return 0, false
	}
	return time.Duration(r), true
}
