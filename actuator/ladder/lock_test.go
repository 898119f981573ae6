package ladder

import (
	"errors"
	"testing"

	"github.com/nervehq/nerve/actuator"
)

func TestDenyLock(t *testing.T) {
	var l DenyLock
	if _, err := l.Acquire("restart-cassandra", "r1"); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Acquire: %v, want ErrLockDenied", err)
	}
	if err := l.Validate(actuator.Grant{ID: "r1", Token: 1}); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate: %v, want ErrLockDenied", err)
	}
}

func TestLocalLock(t *testing.T) {
	var l LocalLock
	a, err := l.Acquire("restart-cassandra", "a")
	if err != nil || a.Token != 1 {
		t.Fatalf("Acquire(a) = %+v, %v; want token 1", a, err)
	}
	if _, err := l.Acquire("exit-node", "b"); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Acquire(b) while a holds: %v, want ErrLockDenied", err)
	}
	if again, err := l.Acquire("restart-cassandra", "a"); err != nil || again != a {
		t.Errorf("Acquire(a) again = %+v, %v; want the same grant %+v", again, err, a)
	}
	if err := l.Validate(a); err != nil {
		t.Errorf("Validate(a): %v", err)
	}
	if err := l.Release(a); err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(a); !errors.Is(err, actuator.ErrLockDenied) {
		t.Errorf("Validate(a) after release: %v, want ErrLockDenied", err)
	}
	b, err := l.Acquire("exit-node", "b")
	if err != nil || b.Token <= a.Token {
		t.Fatalf("Acquire(b) = %+v, %v; want a token above %d", b, err, a.Token)
	}
	// A stale holder can neither validate nor release the new grant.
	if err := l.Release(a); err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(b); err != nil {
		t.Errorf("Validate(b) after a stale release: %v", err)
	}
	if err := l.Validate(actuator.Grant{ID: "b", Token: a.Token}); err == nil {
		t.Error("Validate with an old token: nil error")
	}
}
