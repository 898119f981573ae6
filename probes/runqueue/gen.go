package runqueue

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target bpfel -type nerve_hist -type runq_drop -type runq_outlier -type outlier_drop runqueue ../../bpf/runqueue.bpf.c -- -I../../bpf/include
