package outlier

import (
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name  string
		on    bool
		limit Limit
		d     time.Duration
		ok    bool
	}{
		{"defaults", true, Limit{}, 0, true},
		{"set", true, Limit{Rate: 10, Burst: 3}, time.Millisecond, true},
		{"negative threshold", true, Limit{}, -1, false},
		{"negative rate", true, Limit{Rate: -1}, 0, false},
		{"rate too high", true, Limit{Rate: MaxRate + 1}, 0, false},
		{"burst too high", true, Limit{Burst: MaxRate + 1}, 0, false},
		{"off ignores all", false, Limit{Rate: -1}, -1, true},
	} {
		err := Check(c.on, c.limit, Threshold{Var: "x_ns", D: c.d})
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestLimitDefaults(t *testing.T) {
	for _, c := range []struct{ in, want Limit }{
		{Limit{}, Limit{DefaultRate, DefaultRate}},
		{Limit{Rate: 50}, Limit{50, 50}},
		{Limit{Rate: 50, Burst: 5}, Limit{50, 5}},
	} {
		got, err := c.in.withDefaults()
		if err != nil || got != c.want {
			t.Errorf("%+v: got %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

func TestCString(t *testing.T) {
	for _, c := range []struct {
		in   []int8
		want string
	}{
		{[]int8{'j', 'a', 'v', 'a', 0, 'x'}, "java"},
		{[]int8{'a', 'b'}, "ab"},
		{nil, ""},
	} {
		if got := CString(c.in); got != c.want {
			t.Errorf("CString(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClock(t *testing.T) {
	c := NewClock()
	// The offset maps "now" in CLOCK_MONOTONIC to about now on the wall.
	mono := uint64(time.Now().UnixNano() - c.offset)
	if d := time.Since(c.Wall(mono)); d < -time.Second || d > time.Second {
		t.Errorf("wall time off by %v", d)
	}
}
