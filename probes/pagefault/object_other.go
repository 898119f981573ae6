//go:build !386 && !amd64

package pagefault

// ObjectBytes is nil: the probe has no BPF object outside x86 (see
// load_other.go).
func ObjectBytes() []byte { return nil }
