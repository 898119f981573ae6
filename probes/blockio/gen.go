package blockio

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target bpfel -type block_device_stats -type block_request -type block_drop -type block_op -type block_outlier -type outlier_drop blockio ../../bpf/blockio.bpf.c -- -I../../bpf/include
