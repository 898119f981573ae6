// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * jvm: every stop-the-world moment of the JVMs nerve watches, from HotSpot's
 * USDT probes (uprobes at the notes' file offsets, see the end of this
 * file; no agent in the JVM):
 *   hs_private:safepoint__begin/end  a safepoint, from the start of
 *                                    synchronisation to the end
 *   hotspot:gc__begin/end            a collection
 *   hotspot:vmops__begin/end         a VM operation; its name is an argument
 * A begin stores the time per (tgid, kind); the end sends one event with the
 * pause to user space through a ring buffer. Pauses are rare (at most a few
 * hundred a second), so user space keeps the histograms, the stopped
 * fraction and the thrash bucket. Only JVMs in jvm_watched are seen.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "nerve_hist.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define OP_NAME_LEN 48

enum jvm_kind {
	JVM_SAFEPOINT,
	JVM_GC,
	JVM_VMOP,
	JVM_KINDS,
};

/* Registers an SDT argument can live in, as the attach cookie names them. */
enum jvm_reg {
	REG_NONE, REG_AX, REG_BX, REG_CX, REG_DX, REG_SI, REG_DI, REG_BP,
	REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

struct jvm_key {
	__u32 tgid;
	__u32 kind;
};

struct jvm_event {
	__u32 tgid;
	__u32 kind;
	__u64 start_ns;
	__u64 end_ns;
	char op[OP_NAME_LEN];
};

enum jvm_drop {
	JVM_DROP_RINGBUF,   /* ring buffer full */
	JVM_DROP_STARTS,    /* begin map full */
	JVM_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} jvm_watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 3072);
	__type(key, struct jvm_key);
	__type(value, __u64);
} jvm_starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} jvm_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JVM_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} jvm_drops SEC(".maps");

const struct jvm_event *unused_jvm_event __attribute__((unused));
const enum jvm_kind *unused_jvm_kind __attribute__((unused));
const enum jvm_reg *unused_jvm_reg __attribute__((unused));
const enum jvm_drop *unused_jvm_drop __attribute__((unused));

static __always_inline void drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&jvm_drops, &reason);

	if (n)
		*n += 1;
}

/* regs is a copy on the stack: the verifier refuses a context read at a
 * computed offset, which a switch over the context can compile into. */
static __always_inline __u64 reg(struct pt_regs *ctx, __u64 r)
{
	struct pt_regs regs;

	if (bpf_probe_read_kernel(&regs, sizeof(regs), ctx))
		return 0;
	ctx = &regs;
	switch (r) {
	case REG_AX: return ctx->ax;
	case REG_BX: return ctx->bx;
	case REG_CX: return ctx->cx;
	case REG_DX: return ctx->dx;
	case REG_SI: return ctx->si;
	case REG_DI: return ctx->di;
	case REG_BP: return ctx->bp;
	case REG_R8: return ctx->r8;
	case REG_R9: return ctx->r9;
	case REG_R10: return ctx->r10;
	case REG_R11: return ctx->r11;
	case REG_R12: return ctx->r12;
	case REG_R13: return ctx->r13;
	case REG_R14: return ctx->r14;
	case REG_R15: return ctx->r15;
	}
	return 0;
}

static __always_inline int begin(__u32 kind)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct jvm_key k = { .tgid = tgid, .kind = kind };
	__u64 now;

	if (!bpf_map_lookup_elem(&jvm_watched, &tgid))
		return 0;
	now = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&jvm_starts, &k, &now, BPF_ANY))
		drop(JVM_DROP_STARTS);
	return 0;
}

static __always_inline int end(struct pt_regs *ctx, __u32 kind)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct jvm_key k = { .tgid = tgid, .kind = kind };
	struct jvm_event *e;
	__u64 *start;

	start = bpf_map_lookup_elem(&jvm_starts, &k);
	if (!start)
		return 0; /* not watched, or began before we attached */
	e = bpf_ringbuf_reserve(&jvm_events, sizeof(*e), 0);
	if (!e) {
		drop(JVM_DROP_RINGBUF);
		bpf_map_delete_elem(&jvm_starts, &k);
		return 0;
	}
	e->tgid = tgid;
	e->kind = kind;
	e->start_ns = *start;
	e->end_ns = bpf_ktime_get_ns();
	e->op[0] = 0;
	if (kind == JVM_VMOP) {
		/* The cookie says where the name pointer and its length are:
		 * name register in bits 0-7, length register in bits 8-15. */
		__u64 cookie = bpf_get_attach_cookie(ctx);
		__u64 name = reg(ctx, cookie & 0xff);
		__u64 len = reg(ctx, (cookie >> 8) & 0xff);

		if (len > OP_NAME_LEN - 1)
			len = OP_NAME_LEN - 1;
		len = BOUNDED(len, OP_NAME_LEN);
		if (name && len && bpf_probe_read_user(e->op, len, (void *)name) == 0)
			e->op[len] = 0;
		else
			e->op[0] = 0;
	}
	/* No wakeup per event: this runs in the VM thread while every Java
	 * thread is stopped, and waking the reader would lengthen the pause.
	 * User space polls; a filling buffer wakes it. */
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&jvm_events, BPF_RB_AVAIL_DATA) > 64 * 1024 ?
				  BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	bpf_map_delete_elem(&jvm_starts, &k);
	return 0;
}

/*
 * Each program comes twice, with one body. The kernel binds a program to
 * one attach type at load, and user space (jvm/probe) loads the variant it
 * attaches with:
 *   SEC("uprobe")        a classic uprobe (a perf event) per USDT location;
 *                        needs CAP_SYS_ADMIN since "perf: Revert to
 *                        requiring CAP_SYS_ADMIN for uprobes" (ba677dbe77af)
 *   SEC("uprobe.multi")  one uprobe_multi link over all of a library's
 *                        locations of the probe, with a cookie per location
 *                        (Linux 6.6); needs only CAP_BPF and CAP_PERFMON
 * bpf_get_attach_cookie reads the per-location cookie in both.
 */
#define JVM_PROG(name, body)						\
	SEC("uprobe")							\
	int name(struct pt_regs *ctx) { return body; }			\
	SEC("uprobe.multi")						\
	int name##_m(struct pt_regs *ctx) { return body; }

JVM_PROG(nrv_jvm_sp_begin, begin(JVM_SAFEPOINT))
JVM_PROG(nrv_jvm_sp_end, end(ctx, JVM_SAFEPOINT))
JVM_PROG(nrv_jvm_gc_begin, begin(JVM_GC))
JVM_PROG(nrv_jvm_gc_end, end(ctx, JVM_GC))
JVM_PROG(nrv_jvm_vmop_begin, begin(JVM_VMOP))
JVM_PROG(nrv_jvm_vmop_end, end(ctx, JVM_VMOP))
