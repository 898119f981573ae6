// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * runqueue: how long runnable tasks wait for a CPU.
 *
 * A wait starts when a task is woken (sched_wakeup, sched_wakeup_new) or is
 * switched out while still runnable (preempted), and ends when sched_switch
 * puts it on a CPU. The start time lives in task storage, which the kernel
 * frees with the task: an exited task can never leave a stale start behind
 * that a recycled pid would turn into a bogus huge wait (the hash-by-pid
 * design of runqlat can). A task switched out asleep has its start cleared,
 * so a wakeup of a task that was already running cannot leave one either.
 *
 * Histograms: node-wide, and per target (a cgroup, or a process by tgid, that
 * user space maps to a small target index). Both are per-CPU arrays: no
 * atomics and no hash insert on the hot path.
 *
 * Outliers (nerve_outlier.h): a wait of at least outlier_delay_ns goes to
 * user space through runqueue_outliers with the task that waited (ids,
 * comm, cgroup), the CPU, and the task that was switched out for it: what
 * ran instead. Under the threshold that is one comparison per switch-in.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "nerve_hist.h"
#include "nerve_targets.h"
#include "nerve_task.h"
#include "nerve_outlier.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct runq_task {
	__u64 enqueued_ns; /* 0: not waiting */
};

enum runq_drop {
	RUNQ_DROP_STORAGE, /* could not get task storage at wakeup */
	RUNQ_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct runq_task);
} runq_tasks SEC(".maps");

/* Key 0: the whole node. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nerve_hist);
} runqueue_delay_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct nerve_hist);
} runqueue_target_delay_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RUNQ_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} runq_drops SEC(".maps");

/* One outlier, as runqueue_outliers carries it. */
struct runq_outlier {
	__u64 ts_ns;     /* switch-in, CLOCK_MONOTONIC */
	__u64 delay_ns;
	__u64 cgroup_id; /* of the task that waited */
	__u32 tgid;
	__u32 pid;
	__u32 prev_tgid; /* the task switched out: what ran instead */
	__u32 prev_pid;
	__u32 cpu;
	__u32 pad;
	char comm[TASK_COMM_LEN];
	char prev_comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} runqueue_outliers SEC(".maps");

/* Set by user space; ~0 (the default) turns the outlier path off. */
const volatile __u64 outlier_delay_ns = ~0ULL;

const enum runq_drop *unused_runq_drop __attribute__((unused));
const struct runq_outlier *unused_runq_outlier __attribute__((unused));

static __always_inline void enqueue(struct task_struct *p)
{
	struct runq_task *t;

	if (!p->pid) /* idle */
		return;
	t = bpf_task_storage_get(&runq_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		__u32 k = RUNQ_DROP_STORAGE;
		__u64 *n = bpf_map_lookup_elem(&runq_drops, &k);

		if (n)
			*n += 1;
		return;
	}
	t->enqueued_ns = bpf_ktime_get_ns();
}

/* Sends one outlier; out of line so that the switch program stays small. */
static __noinline int emit_outlier(struct task_struct *prev, struct task_struct *next,
				   __u64 now, __u64 delay)
{
	struct runq_outlier *e;

	e = outlier_reserve(&runqueue_outliers, sizeof(*e), now);
	if (!e)
		return 0;
	e->ts_ns = now;
	e->delay_ns = delay;
	e->cgroup_id = outlier_task_cgroup(next);
	e->tgid = BPF_CORE_READ(next, tgid);
	e->pid = BPF_CORE_READ(next, pid);
	e->prev_tgid = BPF_CORE_READ(prev, tgid);
	e->prev_pid = BPF_CORE_READ(prev, pid);
	e->cpu = bpf_get_smp_processor_id();
	e->pad = 0;
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), next->comm);
	bpf_probe_read_kernel_str(e->prev_comm, sizeof(e->prev_comm), prev->comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(nrv_rq_wakeup, struct task_struct *p)
{
	enqueue(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(nrv_rq_wakeup_new, struct task_struct *p)
{
	enqueue(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(nrv_rq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct runq_task *t;
	struct nerve_hist *h;
	__u64 now = bpf_ktime_get_ns(), delay;
	__u32 zero = 0, *idx;

	/* prev: still runnable (preempted) starts a wait; asleep clears one. */
	if (prev->pid) {
		bool runnable = task_state(prev) == 0; /* TASK_RUNNING */

		t = bpf_task_storage_get(&runq_tasks, prev, 0,
					 runnable ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
		if (t)
			t->enqueued_ns = runnable ? now : 0;
	}

	if (!next->pid)
		return 0;
	t = bpf_task_storage_get(&runq_tasks, next, 0, 0);
	if (!t || !t->enqueued_ns)
		return 0;
	delay = now > t->enqueued_ns ? now - t->enqueued_ns : 0;
	t->enqueued_ns = 0;

	h = bpf_map_lookup_elem(&runqueue_delay_seconds, &zero);
	if (h)
		nerve_hist_add(h, delay);
	idx = target_of(next);
	if (idx) {
		h = bpf_map_lookup_elem(&runqueue_target_delay_seconds, idx);
		if (h)
			nerve_hist_add(h, delay);
	}
	/* The outlier path: under the threshold, one comparison. */
	if (delay >= outlier_delay_ns)
		emit_outlier(prev, next, now, delay);
	return 0;
}
