package thrash

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newDetector(t testing.TB, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runSchedule feeds d at most n pauses of p, run apart, the first starting
// at start, and stops at the first pause after which d is over, returning
// that pause's end.
func runSchedule(d *Detector, start time.Time, p, run time.Duration, n int) (time.Time, bool) {
	for range n {
		end := start.Add(p)
		d.Pause(start, end)
		if d.Over(end) {
			return end, true
		}
		start = end.Add(run)
	}
	return time.Time{}, false
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string // substrings of the error; nil for none
	}{
		{DefaultConfig(), nil},
		{Config{Threshold: time.Nanosecond, Weight: 1e-9}, nil},
		{Config{}, []string{"Threshold", "Weight"}},
		{Config{Threshold: -time.Second, Weight: 5}, []string{"Threshold must be positive, got -1s"}},
		{Config{Threshold: time.Second, Weight: -1}, []string{"Weight"}},
		{Config{Threshold: time.Second, Weight: math.NaN()}, []string{"Weight"}},
		{Config{Threshold: time.Second, Weight: math.Inf(1)}, []string{"Weight"}},
	} {
		err := tc.cfg.Validate()
		if _, nerr := New(tc.cfg); (nerr == nil) != (err == nil) {
			t.Errorf("New(%+v) error = %v, Validate = %v", tc.cfg, nerr, err)
		}
		if tc.want == nil {
			if err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want an error naming %q", tc.cfg, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", tc.cfg, err, w)
			}
		}
	}
}

func TestCriticalFraction(t *testing.T) {
	if got, want := DefaultConfig().CriticalFraction(), 5.0/6; math.Abs(got-want) > 1e-12 {
		t.Errorf("default CriticalFraction = %v, want %v", got, want)
	}
	// The boundary in TimeToTrigger's terms: just below never, just above eventually.
	cfg := DefaultConfig()
	if _, ok := cfg.TimeToTrigger(5.0/6-0.01, 100*time.Millisecond); ok {
		t.Error("triggers just below the critical fraction")
	}
	if _, ok := cfg.TimeToTrigger(5.0/6+0.01, 100*time.Millisecond); !ok {
		t.Error("never triggers just above the critical fraction")
	}
}

// Steady schedules against the prediction.
func TestDetectorSchedules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		f       float64
		p       time.Duration
		horizon time.Duration // wall time simulated when it should not trigger
		trigger bool
	}{
		{name: "10% stopped never triggers", cfg: DefaultConfig(), f: 0.1, p: 100 * time.Millisecond, horizon: time.Hour},
		// Below 5/6 with the default weight: the bucket empties between pauses.
		{name: "50% stopped, default weight, never triggers", cfg: DefaultConfig(), f: 0.5, p: 200 * time.Millisecond, horizon: time.Hour},
		{name: "50% stopped, weight 0.5, triggers", cfg: Config{Threshold: 30 * time.Second, Weight: 0.5}, f: 0.5, p: 200 * time.Millisecond, trigger: true},
		{name: "90% stopped, defaults, triggers", cfg: DefaultConfig(), f: 0.9, p: 300 * time.Millisecond, trigger: true},
		{name: "99% stopped in 1 s pauses, defaults, triggers", cfg: DefaultConfig(), f: 0.99, p: time.Second, trigger: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDetector(t, tc.cfg)
			run, ok := Schedule(tc.f, tc.p)
			if !ok {
				t.Fatalf("Schedule(%v, %v) = false", tc.f, tc.p)
			}
			period := tc.p + run
			want, wantOK := tc.cfg.TimeToTrigger(tc.f, tc.p)
			if wantOK != tc.trigger {
				t.Fatalf("TimeToTrigger = %v, %v; want ok=%v", want, wantOK, tc.trigger)
			}
			n := int(tc.horizon / period)
			if tc.trigger {
				n = int((want+period)/period) + 1
			}
			at, over := runSchedule(d, t0, tc.p, run, n)
			if over != tc.trigger {
				t.Fatalf("over = %v after %d pauses, want %v (level %v)", over, n, tc.trigger, d.Level(t0.Add(time.Duration(n)*period)))
			}
			if !tc.trigger {
				// The bucket empties before every pause, so it never holds more than one.
				if l := d.Level(t0.Add(time.Duration(n-1)*period + tc.p)); l > tc.p {
					t.Errorf("level after the last pause = %v, want at most one pause (%v)", l, tc.p)
				}
				return
			}
			got := at.Sub(t0)
			if diff := got - want; diff < -period || diff > period {
				t.Errorf("triggered after %v, predicted %v (±%v)", got, want, period)
			}
			t.Logf("triggered after %v, predicted %v", got, want)
		})
	}
}

func TestSinglePause(t *testing.T) {
	for _, tc := range []struct {
		p    time.Duration
		over bool
	}{
		{31 * time.Second, true},
		{30 * time.Second, false}, // over means above the threshold, not at it
		{29 * time.Second, false},
	} {
		d := newDetector(t, DefaultConfig())
		events := d.Subscribe()
		end := t0.Add(tc.p)
		d.Pause(t0, end)
		if got := d.Over(end); got != tc.over {
			t.Errorf("%v pause: Over = %v, want %v", tc.p, got, tc.over)
		}
		if got := d.Level(end); got != tc.p {
			t.Errorf("%v pause: Level = %v, want %v", tc.p, got, tc.p)
		}
		select {
		case e := <-events:
			if want := (Event{At: end, Level: tc.p, Over: true}); !tc.over || e != want {
				t.Errorf("%v pause: event %+v, want over=%v at the pause end", tc.p, e, tc.over)
			}
		default:
			if tc.over {
				t.Errorf("%v pause: no event", tc.p)
			}
		}
	}
}

func TestDrainFloorsAtZero(t *testing.T) {
	d := newDetector(t, DefaultConfig())
	if got := d.Level(t0); got != 0 {
		t.Errorf("empty Level = %v", got)
	}
	end := t0.Add(10 * time.Second)
	d.Pause(t0, end)
	for _, tc := range []struct {
		at   time.Time
		want time.Duration
	}{
		{t0, 10 * time.Second}, // before the last pause end: its level
		{end, 10 * time.Second},
		{end.Add(time.Second), 5 * time.Second},
		{end.Add(2 * time.Second), 0},
		{end.Add(time.Hour), 0},
	} {
		if got := d.Level(tc.at); got != tc.want {
			t.Errorf("Level(end%+v) = %v, want %v", tc.at.Sub(end), got, tc.want)
		}
	}
	// An hour of running leaves no debt: the next pause starts from empty.
	start := end.Add(time.Hour)
	d.Pause(start, start.Add(time.Second))
	if got := d.Level(start.Add(time.Second)); got != time.Second {
		t.Errorf("after an hour and a 1 s pause: Level = %v, want 1s", got)
	}
}

func TestPausesOutOfOrder(t *testing.T) {
	s := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	type pause struct{ start, end time.Time }
	for _, tc := range []struct {
		name   string
		pauses []pause
		at     time.Time
		want   time.Duration
	}{
		{"in order", []pause{{s(0), s(10)}, {s(11), s(12)}}, s(12), 6 * time.Second},
		{"overlap counts once", []pause{{s(0), s(10)}, {s(5), s(15)}}, s(15), 15 * time.Second},
		{"repeat ignored", []pause{{s(0), s(10)}, {s(0), s(10)}}, s(10), 10 * time.Second},
		{"contained ignored", []pause{{s(0), s(10)}, {s(2), s(3)}}, s(10), 10 * time.Second},
		{"late ignored", []pause{{s(20), s(30)}, {s(0), s(5)}}, s(30), 10 * time.Second},
		{"end before start ignored", []pause{{s(0), s(10)}, {s(12), s(11)}}, s(10), 10 * time.Second},
		{"empty ignored", []pause{{s(5), s(5)}}, s(5), 0},
	} {
		d := newDetector(t, DefaultConfig())
		for _, p := range tc.pauses {
			d.Pause(p.start, p.end)
		}
		if got := d.Level(tc.at); got != tc.want {
			t.Errorf("%s: Level = %v, want %v", tc.name, got, tc.want)
		}
	}

	// A thrashing schedule shuffled: never above the same pauses in order,
	// never below zero.
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 500
	p, run := 300*time.Millisecond, 30*time.Millisecond
	var ps []pause
	for i := range n {
		start := t0.Add(time.Duration(i) * (p + run))
		ps = append(ps, pause{start, start.Add(p)})
	}
	end := ps[n-1].end
	inOrder := newDetector(t, DefaultConfig())
	for _, x := range ps {
		inOrder.Pause(x.start, x.end)
	}
	want := inOrder.Level(end)
	for trial := range 20 {
		shuffled := slices.Clone(ps)
		// Mostly in order, as a real feed would be, with some swaps.
		for range trial * 10 {
			i := rng.IntN(n - 1)
			shuffled[i], shuffled[i+1] = shuffled[i+1], shuffled[i]
		}
		d := newDetector(t, DefaultConfig())
		for _, x := range shuffled {
			d.Pause(x.start, x.end)
			if l := d.Level(x.end); l < 0 {
				t.Fatalf("trial %d: Level = %v", trial, l)
			}
		}
		if got := d.Level(end); got > want || got < 0 {
			t.Errorf("trial %d: shuffled Level = %v, want in [0, %v] (in order)", trial, got, want)
		}
		if trial == 0 && d.Level(end) != want {
			t.Errorf("unshuffled: Level = %v, want %v", d.Level(end), want)
		}
	}
}

func TestEvents(t *testing.T) {
	cfg := DefaultConfig()
	d := newDetector(t, cfg)
	a, b := d.Subscribe(), d.Subscribe()
	p := 500 * time.Millisecond
	run, _ := Schedule(0.95, p)
	at, over := runSchedule(d, t0, p, run, 1000)
	if !over {
		t.Fatal("95% stopped never triggered")
	}
	want, _ := cfg.TimeToTrigger(0.95, p)
	if got := at.Sub(t0); got != want {
		t.Errorf("triggered after %v, predicted %v", got, want)
	}
	up := Event{At: at, Level: d.Level(at), Over: true}
	for _, ch := range []<-chan Event{a, b} {
		if e := <-ch; e != up {
			t.Errorf("event %+v, want %+v", e, up)
		}
	}

	// The JVM recovers: no more pauses. Asking later gives the exact
	// instant the bucket drained back to the threshold.
	excess := up.Level - cfg.Threshold
	cross := at.Add(time.Duration(math.Ceil(float64(excess) / cfg.Weight)))
	if d.Over(cross.Add(-time.Nanosecond)) != true {
		t.Error("not over just before the crossing")
	}
	select {
	case e := <-a:
		t.Fatalf("early event %+v", e)
	default:
	}
	if d.Over(cross.Add(time.Hour)) {
		t.Error("still over an hour later")
	}
	e := <-a
	if e.Over || !e.At.Equal(cross) || e.Level > cfg.Threshold || e.Level < cfg.Threshold-time.Duration(cfg.Weight) {
		t.Errorf("down event %+v, want at %v with level at the threshold %v", e, cross, cfg.Threshold)
	}
	if d.Over(cross.Add(2 * time.Hour)) {
		t.Error("over again")
	}
	select {
	case e := <-a:
		t.Errorf("repeated event %+v", e)
	default:
	}

	// A crossing down that only the next pause reveals comes before the
	// crossing up that pause causes.
	d = newDetector(t, cfg)
	c := d.Subscribe()
	d.Pause(t0, t0.Add(40*time.Second))
	start := t0.Add(time.Minute)
	d.Pause(start, start.Add(31*time.Second))
	var got []Event
	for len(c) > 0 {
		got = append(got, <-c)
	}
	wantEvents := []Event{
		{At: t0.Add(40 * time.Second), Level: 40 * time.Second, Over: true},
		{At: t0.Add(42 * time.Second), Level: 30 * time.Second, Over: false},
		{At: start.Add(31 * time.Second), Level: 31 * time.Second, Over: true},
	}
	if !slices.Equal(got, wantEvents) {
		t.Errorf("events %+v, want %+v", got, wantEvents)
	}
}

func TestSlowSubscriber(t *testing.T) {
	d := newDetector(t, DefaultConfig())
	ch := d.Subscribe()
	start := t0
	const crossings = 3 * subscriberBuffer
	for range crossings / 2 {
		end := start.Add(31 * time.Second)
		d.Pause(start, end) // up
		start = end.Add(time.Minute)
		d.Level(start) // down
	}
	d.Pause(start, start.Add(40*time.Second)) // up: the latest
	var got []Event
	for len(ch) > 0 {
		got = append(got, <-ch)
	}
	if len(got) != subscriberBuffer {
		t.Fatalf("%d events buffered, want %d", len(got), subscriberBuffer)
	}
	last := got[len(got)-1]
	if want := (Event{At: start.Add(40 * time.Second), Level: 40 * time.Second, Over: true}); last != want {
		t.Errorf("last event %+v, want the latest crossing %+v", last, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].At.Before(got[i-1].At) || got[i].Over == got[i-1].Over {
			t.Errorf("events %d and %d out of order: %+v, %+v", i-1, i, got[i-1], got[i])
		}
	}
}

// Run with -race: feeders, readers and a subscriber at once.
func TestConcurrent(t *testing.T) {
	d := newDetector(t, Config{Threshold: time.Second, Weight: 1})
	ch := d.Subscribe()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				start := t0.Add(time.Duration(i*4+g) * 100 * time.Millisecond)
				d.Pause(start, start.Add(90*time.Millisecond))
				if d.Level(start) < 0 {
					t.Error("negative level")
				}
				d.Over(start.Add(time.Second))
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ch:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}()
	wg.Wait()
	<-done
}

// TestTimeToTriggerMatchesDetector compares the prediction with a detector
// fed the predicted schedule, over random configurations and fractions: the
// trigger time is exact, and "never" means not within many pauses.
func TestTimeToTriggerMatchesDetector(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	logUniform := func(lo, hi float64) float64 { return lo * math.Pow(hi/lo, rng.Float64()) }
	const maxPauses = 20000
	var triggered, never int
	for i := range 300 {
		cfg := Config{
			Threshold: time.Duration(logUniform(float64(100*time.Millisecond), float64(60*time.Second))),
			Weight:    logUniform(0.1, 20),
		}
		f := 1 - rng.Float64() // (0, 1]
		if i%3 == 0 {
			// Near the critical fraction, where rounding matters most.
			f = min(1, cfg.CriticalFraction()+(rng.Float64()-0.5)*0.02)
		}
		p := time.Duration(logUniform(float64(time.Millisecond), float64(40*time.Second)))
		run, ok := Schedule(f, p)
		if !ok {
			t.Fatalf("Schedule(%v, %v) = false", f, p)
		}
		want, wantOK := cfg.TimeToTrigger(f, p)
		d := newDetector(t, cfg)
		at, over := runSchedule(d, t0, p, run, maxPauses)
		switch {
		case wantOK && int64((want+run)/(p+run)) <= maxPauses:
			triggered++
			if !over || at.Sub(t0) != want {
				t.Errorf("%+v, f=%v, pause %v: triggered=%v after %v, predicted %v", cfg, f, p, over, at.Sub(t0), want)
			}
			// Not over at the end of any earlier pause: runSchedule stops at the first.
		case wantOK:
			// Too many pauses to simulate: not over within them.
			if over {
				t.Errorf("%+v, f=%v, pause %v: triggered after %v, predicted only after %v", cfg, f, p, at.Sub(t0), want)
			}
		default:
			never++
			if over {
				t.Errorf("%+v, f=%v, pause %v: triggered after %v, predicted never", cfg, f, p, at.Sub(t0))
			}
		}
	}
	t.Logf("%d cases triggered as predicted, %d never did", triggered, never)
	if triggered < 50 || never < 50 {
		t.Errorf("unbalanced cases: %d triggered, %d never", triggered, never)
	}
}

func TestTimeToTrigger(t *testing.T) {
	cfg := DefaultConfig()
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		cfg  Config
		f    float64
		p    time.Duration
		want time.Duration
		ok   bool
	}{
		{"no stop time", cfg, 0, 100 * ms, 0, false},
		{"NaN", cfg, math.NaN(), 100 * ms, 0, false},
		{"no pause length", cfg, 0.9, 0, 0, false},
		{"invalid config", Config{}, 0.9, 100 * ms, 0, false},
		{"one long pause", cfg, 0.01, 31 * time.Second, 31 * time.Second, true},
		// Back to back 1 s pauses: over after the 31st.
		{"always stopped", cfg, 1, time.Second, 31 * time.Second, true},
		{"above 1 counts as 1", cfg, 7, time.Second, 31 * time.Second, true},
		// 90%: 100 ms pauses 11.111111 ms apart; each cycle drains 55.555555 ms
		// and adds 100 ms, a net 44.444445 ms, so after pause k the bucket holds
		// 100 ms + (k−1)×44.444445 ms, above 30 s first for k = 674.
		{"90%", cfg, 0.9, 100 * ms, 674*100*ms + 673*11111111, true},
		{"just below the critical fraction", cfg, 5.0/6 - 1e-6, 100 * ms, 0, false},
	} {
		got, ok := tc.cfg.TimeToTrigger(tc.f, tc.p)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: TimeToTrigger(%v, %v) = %v, %v; want %v, %v", tc.name, tc.f, tc.p, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzDetector feeds arbitrary pauses, in any order, overlapping or
// reversed, and checks the invariants: no panic, a level never below zero
// nor above the stop time given, Over consistent with Level, draining
// monotone, crossings alternating, and the level never above what the union
// of the same pauses, fed in order, gives.
func FuzzDetector(f *testing.F) {
	f.Add(uint32(30000), uint32(5000), []byte{0, 0, 0, 0, 0x10, 0x27, 0, 0, 0x10, 0x27, 0x20, 0x4e})
	f.Add(uint32(1), uint32(1), []byte{0xff, 0xff, 0xff, 0x7f, 0xff, 0x7f, 0, 0, 0, 0x80, 0, 0x80})
	f.Add(uint32(500), uint32(100), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18})
	f.Fuzz(func(t *testing.T, thresholdMs, weightMilli uint32, ops []byte) {
		cfg := Config{
			Threshold: time.Duration(thresholdMs%600000+1) * time.Millisecond,
			Weight:    float64(weightMilli%50000+1) / 1000,
		}
		d := newDetector(t, cfg)
		events := d.Subscribe()
		type pause struct{ start, end time.Time }
		var given []pause
		var total time.Duration
		last := Event{Over: false}
		check := func() {
			for len(events) > 0 {
				e := <-events
				// At may go back in time here: a pause that began before a
				// time already asked about revises a crossing down.
				if e.Over == last.Over || e.Level < 0 {
					t.Fatalf("event %+v after %+v", e, last)
				}
				last = e
			}
		}
		var latest time.Time
		for len(ops) >= 6 {
			// A start within ±24 days of t0 in ms, and a length of ±32 s.
			off := int32(uint32(ops[0]) | uint32(ops[1])<<8 | uint32(ops[2])<<16 | uint32(ops[3])<<24)
			length := int16(uint16(ops[4]) | uint16(ops[5])<<8)
			ops = ops[6:]
			start := t0.Add(time.Duration(off) * time.Millisecond)
			end := start.Add(time.Duration(length) * time.Millisecond)
			d.Pause(start, end)
			if end.After(start) {
				given = append(given, pause{start, end})
				total += end.Sub(start)
			}
			// Events follow the latest time asked about.
			if end.After(latest) {
				latest = end
			}
			if l := d.Level(end); l < 0 || l > total {
				t.Fatalf("Level = %v after pauses totalling %v", l, total)
			}
			check()
		}
		now := latest.Add(time.Millisecond)
		prev := time.Duration(math.MaxInt64)
		for _, later := range []time.Duration{0, time.Second, time.Minute, time.Hour} {
			at := now.Add(later)
			l, over := d.Level(at), d.Over(at)
			if l < 0 || l > prev || over != (l > cfg.Threshold) {
				t.Fatalf("at +%v: Level %v (before %v), Over %v, threshold %v", later, l, prev, over, cfg.Threshold)
			}
			prev = l
			check()
		}
		if last.Over != d.Over(now.Add(time.Hour)) {
			t.Fatalf("last event %+v, but Over = %v", last, !last.Over)
		}

		// The union of the pauses, merged and fed in order.
		slices.SortFunc(given, func(a, b pause) int { return a.start.Compare(b.start) })
		var union []pause
		for _, p := range given {
			if n := len(union); n > 0 && !p.start.After(union[n-1].end) {
				if p.end.After(union[n-1].end) {
					union[n-1].end = p.end
				}
				continue
			}
			union = append(union, p)
		}
		u := newDetector(t, cfg)
		for _, p := range union {
			u.Pause(p.start, p.end)
		}
		// Draining in more, shorter stretches truncates more nanoseconds.
		slack := time.Duration(len(given)) * time.Nanosecond
		if got, max := d.Level(now), u.Level(now); got > max+slack {
			t.Fatalf("Level %v above the in-order union's %v", got, max)
		}
	})
}
