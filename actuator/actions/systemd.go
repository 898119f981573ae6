package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// SystemdRestart restarts one systemd service through systemd's D-Bus API:
// rung 2 for a sidecar, rung 3 for the database (under the rack lock, which
// the caller holds). A restart is not idempotent; the PIDs it returns let the
// report show that it happened.
type SystemdRestart struct {
	Unit string // the full unit name, e.g. "cassandra.service"

	// dial connects to systemd; nil means the system bus.
	dial func(ctx context.Context) (*sddbus.Conn, error)
}

// NewSystemdRestart restarts unit in the system manager, over the system
// bus: production, where nerve runs as root. The zero value with Unit set
// does the same.
func NewSystemdRestart(unit string) *SystemdRestart {
	return &SystemdRestart{Unit: unit}
}

// NewUserSystemdRestart restarts unit in a user manager (systemd --user),
// over the session bus at busAddress ("unix:path=/run/user/1000/bus"), or
// $DBUS_SESSION_BUS_ADDRESS when busAddress is "". Tests use it.
func NewUserSystemdRestart(unit, busAddress string) *SystemdRestart {
	return &SystemdRestart{Unit: unit, dial: func(ctx context.Context) (*sddbus.Conn, error) {
		if busAddress == "" {
			return sddbus.NewUserConnectionContext(ctx)
		}
		return sddbus.NewConnection(func() (*dbus.Conn, error) { return dialBus(ctx, busAddress) })
	}}
}

// dialBus opens a private connection to the bus at address, authenticated
// as this process's uid, and says Hello: what go-systemd does for the
// session bus, at an address of our choosing.
func dialBus(ctx context.Context, address string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// RestartResult is what a restart did.
type RestartResult struct {
	Unit          string
	JobResult     string // systemd's: "done" on success
	MainPIDBefore uint32 // 0 when the service was not running
	MainPIDAfter  uint32
}

// Run restarts the unit (mode "replace": it supersedes a start or stop
// already queued) and waits until systemd reports the job's result, which
// for a service means its start has completed by its Type= rules. Any result
// other than "done" is an error. ctx bounds the whole call; if it ends, the
// job goes on in systemd and Run returns ctx's error.
func (r *SystemdRestart) Run(ctx context.Context) (RestartResult, error) {
	res := RestartResult{Unit: r.Unit}
	if r.Unit == "" {
		return res, errors.New("systemd restart: no unit")
	}
	fail := func(what string, err error) (RestartResult, error) {
		return res, fmt.Errorf("systemd restart %s: %s: %w", r.Unit, what, err)
	}
	dial := r.dial
	if dial == nil {
		dial = sddbus.NewSystemConnectionContext
	}
	conn, err := dial(ctx)
	if err != nil {
		return fail("connect to systemd", err)
	}
	defer conn.Close()

	if res.MainPIDBefore, err = mainPID(ctx, conn, r.Unit); err != nil {
		return fail("read MainPID", err)
	}
	// Buffered: go-systemd sends the result while holding its job lock,
	// and nobody may be receiving any more if ctx has ended.
	jobDone := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, r.Unit, "replace", jobDone); err != nil {
		return fail("RestartUnit", err)
	}
	select {
	case res.JobResult = <-jobDone:
	case <-ctx.Done():
		return fail("wait for the restart job", ctx.Err())
	}
	if res.JobResult != "done" {
		return fail("job result", fmt.Errorf("%q, want \"done\"", res.JobResult))
	}
	if res.MainPIDAfter, err = mainPID(ctx, conn, r.Unit); err != nil {
		return fail("read MainPID after", err)
	}
	return res, nil
}

func mainPID(ctx context.Context, conn *sddbus.Conn, unit string) (uint32, error) {
	p, err := conn.GetServicePropertyContext(ctx, unit, "MainPID")
	if err != nil {
		return 0, err
	}
	pid, ok := p.Value.Value().(uint32)
	if !ok {
		return 0, fmt.Errorf("MainPID is %s, want a uint32", p.Value.Signature())
	}
	return pid, nil
}
