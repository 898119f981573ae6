/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Outliers: events slower than a threshold, sent to user space with their
 * context through a BPF ring buffer (the flight recorder, probes/flight).
 *
 * Cost. Each probe compares its figure against a `const volatile`
 * threshold that user space sets at load (probes/outlier); under threshold
 * that load-and-compare is the only work the outlier path adds. With no
 * sink configured the threshold is ~0, which no figure reaches. Everything
 * below runs only for an outlier.
 *
 * Floods. A per-CPU token bucket (outlier_rate events per second, up to
 * outlier_burst at once) admits outliers before they touch the ring
 * buffer, so a storm of slow events (every request of a dying disk, every
 * wait of an overloaded node) costs bounded work and ring-buffer space.
 * Refused outliers are counted in outlier_drops[OUTLIER_DROP_RATE_LIMITED];
 * outliers admitted but not stored because the ring buffer was full in
 * outlier_drops[OUTLIER_DROP_LOST]. Both are per CPU; user space sums them.
 *
 * The bucket is per CPU and updated without atomics: tracing programs do not
 * migrate, and the rare nesting on one CPU (a completion in softirq over one
 * in task context) can at worst miscount a token.
 *
 * A probe includes this header after vmlinux.h and the libbpf headers, and
 * defines its own BPF_MAP_TYPE_RINGBUF named after what it holds.
 */
#ifndef NERVE_OUTLIER_H
#define NERVE_OUTLIER_H

#define OUTLIER_NSEC 1000000000ULL
/* Refill at most this much idle time at once, so elapsed * rate cannot
 * overflow (user space keeps the rate at or below 1e6/s). */
#define OUTLIER_MAX_REFILL_NS (10 * OUTLIER_NSEC)

enum outlier_drop {
	OUTLIER_DROP_RATE_LIMITED, /* refused by the per-CPU rate limit */
	OUTLIER_DROP_LOST,         /* ring buffer full */
	OUTLIER_DROP_MAX,
};

/* tokens are in units of 1e-9 event: each ns adds outlier_rate of them, an
 * event takes OUTLIER_NSEC. Integer arithmetic, no division. */
struct outlier_bucket {
	__u64 tokens;
	__u64 last_ns;
};

/* Set by user space at load. */
const volatile __u64 outlier_rate = 200;  /* outliers per second per CPU */
const volatile __u64 outlier_burst = 200; /* outliers at once per CPU */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct outlier_bucket);
} outlier_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OUTLIER_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} outlier_drops SEC(".maps");

const enum outlier_drop *unused_outlier_drop __attribute__((unused));

static __always_inline void outlier_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&outlier_drops, &reason);

	if (n)
		*n += 1;
}

/* Takes a token from this CPU's bucket; false (and counted) when empty. */
static __always_inline bool outlier_admit(__u64 now)
{
	struct outlier_bucket *b;
	__u64 elapsed, tokens, cap = outlier_burst * OUTLIER_NSEC;
	__u32 zero = 0;

	b = bpf_map_lookup_elem(&outlier_buckets, &zero);
	if (!b)
		return false;
	/* A first use (last_ns 0) refills to the full burst. */
	elapsed = now > b->last_ns ? now - b->last_ns : 0;
	if (elapsed > OUTLIER_MAX_REFILL_NS)
		elapsed = OUTLIER_MAX_REFILL_NS;
	b->last_ns = now;
	tokens = b->tokens + elapsed * outlier_rate;
	if (tokens > cap)
		tokens = cap;
	if (tokens < OUTLIER_NSEC) {
		b->tokens = tokens;
		outlier_drop(OUTLIER_DROP_RATE_LIMITED);
		return false;
	}
	b->tokens = tokens - OUTLIER_NSEC;
	return true;
}

/* Room for one outlier of size bytes in ring buffer rb, or NULL: rate
 * limited or ring buffer full, counted either way. The caller fills the
 * record and passes it to bpf_ringbuf_submit. */
static __always_inline void *outlier_reserve(void *rb, __u64 size, __u64 now)
{
	void *e;

	if (!outlier_admit(now))
		return NULL;
	e = bpf_ringbuf_reserve(rb, size, 0);
	if (!e)
		outlier_drop(OUTLIER_DROP_LOST);
	return e;
}

/* The cgroup v2 id of a task (kernfs node id, as /sys/fs/cgroup inodes show
 * it and probes/targets resolves). */
static __always_inline __u64 outlier_task_cgroup(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

#endif /* NERVE_OUTLIER_H */
