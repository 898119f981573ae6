/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Log-linear latency buckets shared by nerve's probes.
 *
 * Each power of two from 2^HIST_MIN_SHIFT ns (1.024 us) to 2^HIST_MAX_SHIFT ns
 * (68.7 s) is split into HIST_SUB linear sub-buckets, so a bucket is at most
 * 25% wide: fine enough to tell a 20 ms drive from a 25 ms one, coarse enough
 * to stay small. Buckets are upper-inclusive, like Prometheus' `le`: the value
 * v lands in the bucket whose upper bound is the smallest bound >= v. The Go
 * side (probes/histogram) mirrors this layout and is tested at every edge.
 *
 *   bucket 0              (0, 2^10]
 *   bucket 1 + 4k + j     (2^(10+k) + j*2^(8+k), 2^(10+k) + (j+1)*2^(8+k)]
 *   bucket HIST_BUCKETS-1 (2^36, +Inf)
 */
#ifndef NERVE_HIST_H
#define NERVE_HIST_H

#define HIST_MIN_SHIFT 10
#define HIST_MAX_SHIFT 36
#define HIST_SUB_SHIFT 2
#define HIST_SUB (1 << HIST_SUB_SHIFT)
#define HIST_BUCKETS (2 + (HIST_MAX_SHIFT - HIST_MIN_SHIFT) * HIST_SUB)

/* Index of the highest set bit; v must be non-zero. Branchy but loop-free:
 * BPF has no count-leading-zeros instruction. */
static __always_inline __u32 hist_msb(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8)  { v >>= 8;  r += 8; }
	if (v >> 4)  { v >>= 4;  r += 4; }
	if (v >> 2)  { v >>= 2;  r += 2; }
	if (v >> 1)  { r += 1; }
	return r;
}

static __always_inline __u32 hist_bucket(__u64 ns)
{
	__u64 u;
	__u32 m;

	if (ns <= (1ULL << HIST_MIN_SHIFT))
		return 0;
	u = ns - 1; /* makes the buckets upper-inclusive */
	m = hist_msb(u);
	if (m >= HIST_MAX_SHIFT)
		return HIST_BUCKETS - 1;
	return 1 + (m - HIST_MIN_SHIFT) * HIST_SUB +
	       ((u >> (m - HIST_SUB_SHIFT)) & (HIST_SUB - 1));
}

/* Force an index below max in the very register that will be used, so that
 * the verifier sees the bound (a C comparison is often made on a copy). */
#define BOUNDED(v, max)                                                  \
	({                                                               \
		__u64 __i = (v);                                         \
		asm volatile("if %0 < %1 goto +1; %0 = 0;"               \
			     : "+r"(__i) : "i"(max));                    \
		__i;                                                     \
	})

/* A histogram in a per-CPU map value: no atomics needed. */
struct nerve_hist {
	__u64 counts[HIST_BUCKETS];
	__u64 sum_ns;
};

static __always_inline void nerve_hist_add(struct nerve_hist *h, __u64 v)
{
	__u64 b = BOUNDED(hist_bucket(v), HIST_BUCKETS);

	h->counts[b] += 1;
	h->sum_ns += v;
}

#endif /* NERVE_HIST_H */
