package ladder

import (
	"fmt"
	"sync"

	"github.com/nervehq/nerve/actuator"
)

var (
	_ actuator.Lock = DenyLock{}
	_ actuator.Lock = (*LocalLock)(nil)
)

// DenyLock never grants the rack lock: the safe default until the manager
// exists. Rungs 3-5 cannot act with it.
type DenyLock struct{}

// Acquire always fails with actuator.ErrLockDenied.
func (DenyLock) Acquire(op, requestID string) (actuator.Grant, error) {
	return actuator.Grant{}, fmt.Errorf("%s (%s): no lock manager configured: %w", op, requestID, actuator.ErrLockDenied)
}

// Validate always fails: nothing was granted.
func (DenyLock) Validate(actuator.Grant) error {
	return fmt.Errorf("no lock manager configured: %w", actuator.ErrLockDenied)
}

// Release has nothing to give back.
func (DenyLock) Release(actuator.Grant) error { return nil }

// LocalLock is a rack lock for one node: tests and one-box trials. One
// holder at a time; each grant gets a token greater than every earlier one,
// so a stale grant fails Validate.
type LocalLock struct {
	mu     sync.Mutex
	holder actuator.Grant // zero when free; guarded by mu
	op     string         // the holder's operation; guarded by mu
	last   uint64         // the last token granted; guarded by mu
}

// Acquire grants the lock when it is free. Asking again with the holder's
// requestID returns the same grant, so a step retried after a crash does not
// lock itself out.
func (l *LocalLock) Acquire(op, requestID string) (actuator.Grant, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.holder.Token == 0:
		l.last++
		l.holder, l.op = actuator.Grant{ID: requestID, Token: l.last}, op
		return l.holder, nil
	case l.holder.ID == requestID:
		return l.holder, nil
	}
	return actuator.Grant{}, fmt.Errorf("%s (%s): held by %s (%s), token %d: %w",
		op, requestID, l.op, l.holder.ID, l.holder.Token, actuator.ErrLockDenied)
}

// Validate checks that g is the grant held now.
func (l *LocalLock) Validate(g actuator.Grant) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g.Token == 0 || g != l.holder {
		return fmt.Errorf("grant %s token %d is not held (holder token %d): %w", g.ID, g.Token, l.holder.Token, actuator.ErrLockDenied)
	}
	return nil
}

// Release frees the lock if g holds it. Releasing a grant that does not
// hold it (released already, or stale) does nothing, so Release can be
// retried.
func (l *LocalLock) Release(g actuator.Grant) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g.Token != 0 && g == l.holder {
		l.holder, l.op = actuator.Grant{}, ""
	}
	return nil
}
