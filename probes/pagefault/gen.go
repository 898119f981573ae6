package pagefault

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target amd64 -type pf_outlier -type outlier_drop pagefault ../../bpf/pagefault.bpf.c -- -I../../bpf/include
