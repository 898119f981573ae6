package fsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/nervehq/nerve/manager"
)

func TestEncodeDecode(t *testing.T) {
	c, err := NewCommand(manager.OpAcquire, t0, acq("n1", "r1", "q"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != c.Op || !got.At.Equal(c.At) || string(got.Body) != string(c.Body) {
		t.Fatalf("Decode(Encode(c)) = %+v, want %+v", got, c)
	}
	for _, op := range []manager.Op{manager.OpExpire} {
		if _, err := NewCommand(op, t0, nil); err != nil {
			t.Errorf("NewCommand(%s, nil): %v", op, err)
		}
	}
	if _, err := Encode(manager.Command{Op: manager.OpRenew, At: t0}); !errors.Is(err, manager.ErrBadRequest) {
		t.Errorf("Encode of a renew with no body: %v, want ErrBadRequest", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	at := `"at":"2025-01-01T00:00:00Z"`
	tests := []struct {
		name, in string
		want     string // in the error
	}{
		{"empty", "", "empty"},
		{"blank", "  \n", "empty"},
		{"not JSON", "{op:", "decode command"},
		{"trailing data", `{"op":"expire",` + at + `} x`, "decode command"},
		{"a list", `[1,2]`, "decode command"},
		{"no op", `{` + at + `}`, "no op"},
		{"unknown op", `{"op":"reboot",` + at + `,"body":{}}`, `"reboot"`},
		{"no time", `{"op":"expire"}`, "no time"},
		{"bad time", `{"op":"expire","at":"yesterday"}`, "decode command"},
		{"no body", `{"op":"renew",` + at + `}`, "renew command has no body"},
		{"null body", `{"op":"release",` + at + `,"body":null}`, "no body"},
		{"body of the wrong type", `{"op":"acquire",` + at + `,"body":[1]}`, "acquire body"},
		{"field of the wrong type", `{"op":"renew",` + at + `,"body":{"grant_id":"g-1","token":"one"}}`, "renew body"},
		{"missing field", `{"op":"acquire",` + at + `,"body":{"cluster":"c","rack":"r","node":"n"}}`, "missing request_id"},
		{"expire body not JSON", `{"op":"expire",` + at + `,"body":{]}`, "decode command"},
		{"decision not JSON", `{"op":"report",` + at + `,"body":{"node":"n","id":"1","decision":{x}}}`, "decode command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if !errors.Is(err, manager.ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
	// Fields a newer leader might add are ignored, not refused.
	if _, err := Decode([]byte(`{"op":"expire",` + at + `,"body":{"future":1},"trace":"x"}`)); err != nil {
		t.Fatalf("unknown fields: %v", err)
	}
}
