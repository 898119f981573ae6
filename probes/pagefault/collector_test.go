package pagefault

import (
	"strings"
	"testing"
)

func TestParseMajorFaults(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  string
	}{
		{"pgfault 100\npgmajfault 42\npgrefill 1\n", 42, ""},
		{"pgfault 100\n", 0, "no pgmajfault"},
		{"pgmajfault x\n", 0, "pgmajfault"},
		{"pgmajfault -1\n", 0, "pgmajfault"},
	}
	for _, tt := range tests {
		got, err := parseMajorFaults(strings.NewReader(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parse(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parse(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseMajorFaults(f *testing.F) {
	f.Add("pgmajfault 42\n")
	f.Add("pgmajfault 18446744073709551616\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseMajorFaults(strings.NewReader(s))
	})
}
