//go:build 386 || amd64

package pagefault

// ObjectBytes is the BPF object the probe loads, as bpf2go embedded it
// (pagefault_x86_bpfel.o). `nerve version` and nerve_build_info hash it, so
// that two builds can be told apart by the kernel code they run. The caller
// must not modify it.
func ObjectBytes() []byte { return _PagefaultBytes }
