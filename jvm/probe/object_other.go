//go:build !386 && !amd64

package probe

// ObjectBytes is nil: the probe has no BPF object outside x86 (see
// probe_other.go).
func ObjectBytes() []byte { return nil }
