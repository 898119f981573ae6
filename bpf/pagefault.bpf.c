// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pagefault: time user threads spend blocked inside a page fault, typically a
 * major fault reading an mmap'd file (Cassandra's SSTables) from a disk.
 *
 * Method (x86-64; no kprobes or fexit needed):
 *  1. exceptions:page_fault_user gives the faulting user ip; we keep it in
 *     the task's storage.
 *  2. At sched_switch, a task going to sleep uninterruptibly whose saved user
 *     registers (bpf_task_pt_regs) still show that ip, with orig_ax == -1
 *     (the entry code sets -1 for exceptions; a syscall leaves its number),
 *     is blocked inside that fault: the stall starts.
 *  3. The stall ends when the task is switched back in, so it includes the
 *     wait for a CPU after the I/O completed: what the thread lost.
 * One stall is one blocking sleep inside a fault; a fault that sleeps twice
 * counts twice. Faults that never sleep (minor faults) cost one task-storage
 * write and are not stalls.
 *
 * Limits: x86-64 only (the tracepoint and orig_ax are x86's); where fexit on
 * handle_mm_fault exists a direct measurement would be possible, but this
 * method works on kernels without kprobes or fentry.
 *
 * Outliers (nerve_outlier.h): a stall of at least outlier_stall_ns goes to
 * user space through pagefault_outliers with the thread (ids, comm,
 * cgroup) and the faulting address, which user space resolves to a file and
 * offset through /proc/<pid>/maps. The fault path pays one more store (the
 * address); under the threshold the switch-in pays one comparison.
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

struct pf_task {
	__u64 fault_ip;   /* user ip of the last fault; 0: none pending */
	__u64 sleep_ns;   /* start of a stall in progress; 0: none */
	__u64 fault_addr; /* the address that fault touched, for outliers */
};

/* One outlier, as pagefault_outliers carries it. */
struct pf_outlier {
	__u64 ts_ns;     /* end of the stall (switch-in), CLOCK_MONOTONIC */
	__u64 stall_ns;
	__u64 cgroup_id;
	__u64 address;   /* the faulting user address */
	__u32 tgid;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pf_task);
} pf_tasks SEC(".maps");

/* Key 0: every user thread on the node. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nerve_hist);
} pagefault_stall_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct nerve_hist);
} pagefault_target_stall_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} pagefault_outliers SEC(".maps");

/* Set by user space; ~0 (the default) turns the outlier path off. */
const volatile __u64 outlier_stall_ns = ~0ULL;

const struct pf_outlier *unused_pf_outlier __attribute__((unused));

/* Sends one outlier; out of line so that the switch program stays small. */
static __noinline int emit_outlier(struct task_struct *task, __u64 addr, __u64 now, __u64 stall)
{
	struct pf_outlier *e;

	e = outlier_reserve(&pagefault_outliers, sizeof(*e), now);
	if (!e)
		return 0;
	e->ts_ns = now;
	e->stall_ns = stall;
	e->cgroup_id = outlier_task_cgroup(task);
	e->address = addr;
	e->tgid = BPF_CORE_READ(task, tgid);
	e->pid = BPF_CORE_READ(task, pid);
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), task->comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(nrv_pf_fault, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	struct pf_task *t;

	t = bpf_task_storage_get(&pf_tasks, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (t) {
		t->fault_ip = regs->ip;
		t->fault_addr = address;
	}
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(nrv_pf_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct nerve_hist *h;
	struct pf_task *t;
	__u32 zero = 0, *idx;
	__u64 now, stall;

	t = bpf_task_storage_get(&pf_tasks, prev, 0, 0);
	if (t && t->fault_ip) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);

		if ((task_state(prev) & NERVE_TASK_UNINTERRUPTIBLE) && regs &&
		    regs->ip == t->fault_ip && (long)regs->orig_ax == -1)
			t->sleep_ns = bpf_ktime_get_ns();
		else if (regs && regs->ip != t->fault_ip)
			t->fault_ip = 0; /* back in user space since: that fault is over */
	}

	t = bpf_task_storage_get(&pf_tasks, next, 0, 0);
	if (!t || !t->sleep_ns)
		return 0;
	now = bpf_ktime_get_ns();
	stall = now > t->sleep_ns ? now - t->sleep_ns : 0;
	t->sleep_ns = 0;

	h = bpf_map_lookup_elem(&pagefault_stall_seconds, &zero);
	if (h)
		nerve_hist_add(h, stall);
	idx = target_of(next);
	if (idx) {
		h = bpf_map_lookup_elem(&pagefault_target_stall_seconds, idx);
		if (h)
			nerve_hist_add(h, stall);
	}
	/* The outlier path: under the threshold, one comparison. */
	if (stall >= outlier_stall_ns)
		emit_outlier(next, t->fault_addr, now, stall);
	return 0;
}
