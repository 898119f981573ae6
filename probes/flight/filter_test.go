package flight

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	now := t0
	for _, tc := range []struct {
		query string
		want  Query
		param string // the parameter an error names; "" for no error
	}{
		{"", Query{Limit: DefaultLimit}, ""},
		{"since=10m", Query{Filter: Filter{Since: now.Add(-10 * time.Minute)}, Limit: DefaultLimit}, ""},
		{"since=2025-03-04T04:00:00Z&until=2025-03-04T04:30:00Z",
			Query{Filter: Filter{Since: now.Add(-time.Hour), Until: now.Add(-30 * time.Minute)}, Limit: DefaultLimit}, ""},
		{"pid=42&device=nvme0n1&signal=blockio&limit=5", Query{Filter: Filter{PID: 42, Device: "nvme0n1", Signal: BlockIO}, Limit: 5}, ""},
		{"device=dm-0", Query{Filter: Filter{Device: "dm-0"}, Limit: DefaultLimit}, ""},
		{"since=yesterday", Query{}, "since"},
		{"since=-5m", Query{}, "since"},
		{"until=soon", Query{}, "until"},
		{"since=1m&until=2m", Query{}, "until"},
		{"pid=0", Query{}, "pid"},
		{"pid=x", Query{}, "pid"},
		{"pid=99999999999999999999", Query{}, "pid"},
		{"device=../etc", Query{}, "device"},
		{"device=sda%20", Query{}, "device"},
		{"signal=disk", Query{}, "signal"},
		{"limit=0", Query{}, "limit"},
		{"limit=1000000", Query{}, "limit"},
		{"pid=1&pid=2", Query{}, "pid"},
		{"sinse=10m", Query{}, "sinse"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v, now)
			if tc.param != "" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Param != tc.param {
					t.Fatalf("error %v, want one naming %q", err, tc.param)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until) || got.PID != tc.want.PID ||
				got.Device != tc.want.Device || got.Signal != tc.want.Signal || got.Limit != tc.want.Limit {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Whatever the query string, ParseQuery returns a query or a ParamError,
// never panics, and a query it returns survives Values and back.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "since=10m&pid=1", "device=loop3&signal=pagefault&limit=7",
		"since=2025-03-04T04:00:00Z&until=2025-03-04T04:30:00.5Z", "since=1h&until=30m", "pid=-1", "x=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, t0)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" {
				t.Fatalf("error %v is not a ParamError naming a parameter", err)
			}
			return
		}
		back, err := ParseQuery(q.Values(), t0)
		if err != nil {
			t.Fatalf("Values %q of %+v does not parse: %v", q.Values().Encode(), q, err)
		}
		if !back.Since.Equal(q.Since) || !back.Until.Equal(q.Until) || back.Filter.PID != q.PID ||
			back.Device != q.Device || back.Signal != q.Signal || back.Limit != q.Limit {
			t.Fatalf("round trip %+v -> %+v", q, back)
		}
	})
}
