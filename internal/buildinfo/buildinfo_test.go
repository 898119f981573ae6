package buildinfo

import (
	"regexp"
	"slices"
	"testing"
)

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestBPFObjectSHA256(t *testing.T) {
	got := BPFObjectSHA256()
	if !hexSHA256.MatchString(got) {
		t.Fatalf("BPFObjectSHA256() = %q, want 64 lowercase hex digits", got)
	}
	if again := Hash(Objects()); again != got {
		t.Errorf("hash not stable: %s, then %s", got, again)
	}
	for _, o := range Objects() {
		if o.Probe == "" {
			t.Errorf("an object has no probe name")
		}
	}
	if n := len(Objects()[0].Bytes); n == 0 {
		t.Errorf("blockio object is empty")
	}
}

func TestHash(t *testing.T) {
	base := []Object{{"a", []byte("elf-a")}, {"b", []byte("elf-b")}, {"c", nil}}
	clone := func() []Object {
		out := make([]Object, len(base))
		for i, o := range base {
			out[i] = Object{o.Probe, slices.Clone(o.Bytes)}
		}
		return out
	}
	want := Hash(base)
	if got := Hash(clone()); got != want {
		t.Fatalf("same objects: %s, want %s", got, want)
	}
	tests := []struct {
		name   string
		change func([]Object) []Object
	}{
		{"one byte flipped", func(o []Object) []Object { o[1].Bytes[0] ^= 1; return o }},
		{"byte appended", func(o []Object) []Object { o[0].Bytes = append(o[0].Bytes, 0); return o }},
		{"byte moved to the next object", func(o []Object) []Object {
			o[0].Bytes, o[1].Bytes = []byte("elf-"), []byte("aelf-b")
			return o
		}},
		{"missing object present", func(o []Object) []Object { o[2].Bytes = []byte("x"); return o }},
		{"renamed", func(o []Object) []Object { o[0].Probe = "z"; return o }},
		{"reordered", func(o []Object) []Object { o[0], o[1] = o[1], o[0]; return o }},
		{"object dropped", func(o []Object) []Object { return o[:2] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hash(tt.change(clone())); got == want {
				t.Errorf("hash unchanged: %s", got)
			}
		})
	}
}
