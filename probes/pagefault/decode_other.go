//go:build !386 && !amd64

package pagefault

import (
	"errors"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
)

// decoder is never used: load fails first outside x86.
func decoder() func(raw []byte, clock outlier.Clock) (flight.Event, error) {
	return func([]byte, outlier.Clock) (flight.Event, error) {
		return flight.Event{}, errors.New("page-fault outliers are x86 only")
	}
}
