package main

import (
	"fmt"
	"strconv"

	"github.com/alecthomas/kingpin/v2"
)

// wholeNumber is an int flag that takes whole numbers only. kingpin's own
// Int() parses a float and truncates it, so --pid=1.5 would mean pid 1,
// and its errors do not name the flag.
type wholeNumber struct {
	flag string
	v    *int
}

func (w wholeNumber) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("--%s: want a whole number, got %q", w.flag, s)
	}
	*w.v = n
	return nil
}

func (w wholeNumber) String() string { return strconv.Itoa(*w.v) }

// intFlag makes f (named name) a wholeNumber flag and returns its value.
func intFlag(f *kingpin.FlagClause, name string) *int {
	v := new(int)
	f.SetValue(wholeNumber{flag: name, v: v})
	return v
}
