package probe

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type jvm_event -type jvm_kind -type jvm_reg -type jvm_drop jvm ../../bpf/jvm.bpf.c -- -I../../bpf/include
