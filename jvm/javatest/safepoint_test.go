package javatest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// The logs under testdata/ are real, captured from OpenJDK 17.0.15 (Debian
// 17.0.15+6-Debian-1deb12u1) running this package's programs:
//
//   - safepoint-all.log: `java -Xlog:safepoint*=info:file=...::filecount=0
//     SafepointLoop 1`, its first 30 and last 10 lines. The safepoint+cleanup
//     and safepoint+stats lines, and the statistics printed at exit, are the
//     lines the parser must skip.
//   - safepoint-decorations.log: `-Xlog:safepoint:file=...:time,uptimemillis,
//     uptimenanos,pid,tid,level,tags`, the first 4 lines.
//   - heapthrash-g1.log: `java -XX:+UseG1GC -Xmx64m -Xlog:safepoint:file=...
//     HeapThrash 10`, the first 15 lines, G1's remark and cleanup pauses among
//     them.
func TestParseSafepointLogGolden(t *testing.T) {
	logs, err := filepath.Glob("testdata/*.log")
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatal("no testdata/*.log")
	}
	for _, path := range logs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := ParseSafepointLog(f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, r := range recs {
				fmt.Fprintf(&b, "uptime=%v op=%s since=%d reaching=%d cleanup=%d at=%d total=%d\n",
					r.Uptime, r.Operation, r.SinceLast, r.Reaching, r.Cleanup, r.AtSafepoint, r.Total)
				// Java 17 splits the stop exactly into these three parts.
				if r.Reaching+r.Cleanup+r.AtSafepoint != r.Total {
					t.Errorf("%+v: reaching+cleanup+at != total", r)
				}
			}
			got := b.String()
			golden := strings.TrimSuffix(path, ".log") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("parsed %s:\n%s\nwant (%s):\n%s", path, got, golden, want)
			}
		})
	}
}

func TestParseSafepointLog(t *testing.T) {
	const line = `[0.191s][info][safepoint] Safepoint "G1CollectFull", Time since last: 51902247 ns, Reaching safepoint: 3036 ns, Cleanup: 4318 ns, At safepoint: 35561628 ns, Total: 35568982 ns`
	full := SafepointRecord{
		Uptime: 191 * time.Millisecond, Operation: "G1CollectFull", SinceLast: 51902247,
		Reaching: 3036, Cleanup: 4318, AtSafepoint: 35561628, Total: 35568982,
	}
	for _, tc := range []struct {
		name    string
		in      string
		want    []SafepointRecord
		wantErr string // a substring of the error; "" for none
	}{
		{name: "java 17", in: line + "\n", want: []SafepointRecord{full}},
		{name: "crlf", in: line + "\r\n", want: []SafepointRecord{full}},
		{
			name: "newer JDKs: no cleanup",
			in:   `[1.500s][info][safepoint] Safepoint "Cleanup", Time since last: 1000 ns, Reaching safepoint: 20 ns, At safepoint: 30 ns, Total: 50 ns` + "\n",
			want: []SafepointRecord{{Uptime: 1500 * time.Millisecond, Operation: "Cleanup", SinceLast: 1000, Reaching: 20, AtSafepoint: 30, Total: 50}},
		},
		{
			name: "no decorations, unknown field",
			in:   `Safepoint "ThreadDump", Total: 7 ns, Page traps: 0 ns` + "\n",
			want: []SafepointRecord{{Operation: "ThreadDump", Total: 7}},
		},
		{
			name: "uptime in ms and ns: the first wins",
			in:   `[12ms][12345678ns][info][safepoint] Safepoint "X", Total: 1 ns` + "\n",
			want: []SafepointRecord{{Uptime: 12 * time.Millisecond, Operation: "X", Total: 1}},
		},
		{
			name: "other lines skipped",
			in: "\n[0.1s][info][safepoint,stats  ] G1CollectFull [ 11 0 ][ 1 2 3 6 ] 0\n" +
				"[0.1s][info][gc] GC(0) Pause Full (System.gc()) 1M->1M(8M) 1.000ms\n" +
				"garbage [\n",
			want: nil,
		},
		{
			name: "partial last line left out",
			in:   line + "\n" + line[:60],
			want: []SafepointRecord{full},
		},
		{name: "partial line before the end", in: line[:60] + "\n" + line + "\n", wantErr: "line 1"},
		{name: "no total", in: `Safepoint "X", Reaching safepoint: 1 ns` + "\n", wantErr: "no Total"},
		{name: "negative", in: `Safepoint "X", Total: -1 ns` + "\n", wantErr: "non-negative"},
		{name: "overflow", in: `Safepoint "X", Total: 9223372036854775808 ns` + "\n", wantErr: "non-negative"},
		{name: "not ns", in: `Safepoint "X", Total: 1 ms` + "\n", wantErr: "not in ns"},
		{name: "twice", in: `Safepoint "X", Total: 1 ns, Total: 1 ns` + "\n", wantErr: "twice"},
		{name: "no fields", in: `Safepoint "X"` + "\n", wantErr: "no fields"},
		{name: "unquoted", in: `Safepoint "X, Total: 1 ns` + "\n", wantErr: "quoted"},
		{name: "too long", in: `Safepoint "` + strings.Repeat("x", MaxLine) + "\n", wantErr: "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSafepointLog(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStoppedFraction(t *testing.T) {
	for _, tc := range []struct {
		recs []SafepointRecord
		want float64
	}{
		{nil, 0},
		{[]SafepointRecord{{SinceLast: 3, Total: 1}}, 0.25},
		{[]SafepointRecord{{SinceLast: 1, Total: 1}, {SinceLast: 5, Total: 9}}, 10.0 / 16},
	} {
		if got := StoppedFraction(tc.recs); got != tc.want {
			t.Errorf("StoppedFraction(%+v) = %v, want %v", tc.recs, got, tc.want)
		}
	}
}

// formatRecord writes r back in the JVM's format, with an exact uptime.
func formatRecord(r SafepointRecord) string {
	return fmt.Sprintf("[%dns][info][safepoint] Safepoint \"%s\", Time since last: %d ns, Reaching safepoint: %d ns, Cleanup: %d ns, At safepoint: %d ns, Total: %d ns",
		int64(r.Uptime), r.Operation, r.SinceLast, r.Reaching, r.Cleanup, r.AtSafepoint, r.Total)
}

// FuzzParseSafepointLog checks that no input panics, that whatever parses
// is sane, and that writing the records back in the JVM's format and parsing
// that gives the same records.
func FuzzParseSafepointLog(f *testing.F) {
	for _, path := range []string{"testdata/safepoint-all.log", "testdata/safepoint-decorations.log"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(`[1.5s][9ns] Safepoint "a", Total: 0 ns` + "\n" + `Safepoint "b", Cleanup: 3 ns, Total: 1 ns`)
	f.Add(`[Infs][1e3s][.s][-1ms] Safepoint "", Total: 1 ns`)
	f.Fuzz(func(t *testing.T, in string) {
		recs, err := ParseSafepointLog(strings.NewReader(in))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, r := range recs {
			if r.Operation == "" || r.Uptime < 0 || r.SinceLast < 0 || r.Reaching < 0 || r.Cleanup < 0 || r.AtSafepoint < 0 || r.Total < 0 {
				t.Fatalf("insane record %+v from %q", r, in)
			}
			if strings.Contains(r.Operation, `"`) {
				t.Fatalf("operation %q holds a quote", r.Operation)
			}
			b.WriteString(formatRecord(r))
			b.WriteByte('\n')
		}
		again, err := ParseSafepointLog(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if !reflect.DeepEqual(again, recs) {
			t.Fatalf("round trip: got %+v, want %+v", again, recs)
		}
		if f := StoppedFraction(recs); f < 0 || f > 1 {
			t.Fatalf("StoppedFraction = %v", f)
		}
	})
}
