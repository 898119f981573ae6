// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * blockio: per-device block I/O service time, excluding queueing, and queue
 * time, with the number of requests already in flight at issue.
 *
 * What the figures include (blk-mq):
 *   queue time   = from the moment the request could first be built
 *                  (bio submission, when the submitter had to wait more
 *                  than tagwait_min_ns for a request/driver tag; otherwise
 *                  the request's own start_time_ns, set by the kernel when
 *                  it was allocated) to block_rq_issue, i.e. waiting for a
 *                  tag, in the plug, and in the I/O scheduler.
 *   service time = block_rq_issue -> final block_rq_complete: what the
 *                  driver and the device spent (for a loop device this
 *                  includes the loop worker, which queues after issue).
 *   in flight    = requests issued to the driver of that disk and not yet
 *                  completed, as seen by this program, just before issue.
 *
 * Cost: no hash insert or delete on the fast path. The per-request state
 * lives in an LRU hash keyed by the request pointer; requests are
 * preallocated by blk-mq, so after warm-up each issue and completion is one
 * lookup and an in-place write. Clock reads are the dearest part on
 * virtual machines, so: issue reads none where the kernel stamps the
 * request itself; submission reads none unless the disk has lately made a
 * submitter sleep for a tag; the tag-wait stash is touched only for a real
 * wait.
 *
 * Outliers (nerve_outlier.h): a completed request whose service time is at
 * least outlier_service_ns, or whose queue time is at least
 * outlier_queue_ns, goes to user space through block_outliers with its
 * device, op, sector, size, queue and service time, requests in flight at
 * issue, the task that issued it and the cgroup its bio is charged to. The
 * fast path pays two comparisons at completion and, at issue, one helper
 * call and one store (the issuing task) plus one store (the in-flight
 * count). The queue time computed at issue is kept in the request's state
 * in place of the tag wait it already consumed, so it costs no store.
 * comm is not stored: user space reads it from /proc at receipt, which
 * keeps 16 bytes of copy out of every issue.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "nerve_hist.h"
#include "nerve_outlier.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BLOCK_OPS 5     /* read, write, flush, discard, other */
#define BLOCK_CLASSES 4 /* in flight at issue: 0, 1-3, 4-15, 16+ */

enum block_op {
	BLOCK_OP_READ,
	BLOCK_OP_WRITE,
	BLOCK_OP_FLUSH,
	BLOCK_OP_DISCARD,
	BLOCK_OP_OTHER,
};

/* Reasons an event is lost; each is a metric. */
enum block_drop {
	BLOCK_DROP_DEVICE_SLOTS,   /* request_queue id beyond block_devices */
	BLOCK_DROP_REQUEST_MAP,    /* could not remember an issued request */
	BLOCK_DROP_UNMATCHED,      /* completion whose issue we never saw */
	BLOCK_DROP_TAGWAIT_MAP,    /* could not stash a tag wait */
	BLOCK_DROP_MAX,
};

/* One slot per request_queue id (small, reused by the kernel's ida). */
struct block_device_stats {
	__u32 dev;      /* kernel dev_t of the whole disk: MAJOR << 20 | MINOR */
	__u32 pad;
	__s64 inflight; /* issued and not completed, as seen by us */
	__s64 tagwaits_pending;
	__u64 tag_pressure_until; /* jiffies: time submissions until then */
	__u32 kernel_issue_ts;    /* the kernel stamps io_start_time_ns here */
	__u32 pad2;
	__u64 requests[BLOCK_OPS];
	__u64 errors[BLOCK_OPS];
	__u64 queue_unknown[BLOCK_OPS];
	__u64 queue_sum_ns[BLOCK_OPS];
	__u64 service_sum_ns[BLOCK_OPS][BLOCK_CLASSES];
	__u64 queue[BLOCK_OPS][HIST_BUCKETS];
	__u64 service[BLOCK_OPS][BLOCK_CLASSES][HIST_BUCKETS];
};

struct block_request {
	__u64 issue_ns;  /* ours, or 1 when the kernel's io_start_time_ns counts; 0: not in flight */
	/* issue_ns 1: tag wait to add to the queue time at completion;
	 * otherwise the queue time, computed at issue (0: unknown) */
	__u64 waited_ns;
	__u64 pid_tgid;  /* the task that issued it, for outliers */
	__u32 slot;
	__u8 op;
	__u8 class;
	__u16 inflight;  /* in flight before it at issue, saturated, for outliers */
};

/* One outlier, as block_outliers carries it. */
struct block_outlier {
	__u64 ts_ns;      /* completion, CLOCK_MONOTONIC */
	__u64 sector;
	__u64 queue_ns;
	__u64 service_ns;
	__u64 cgroup_id;  /* of the bio's blkcg; 0: unknown */
	__u32 tgid;
	__u32 pid;
	__u32 dev;        /* MAJOR << 20 | MINOR of the disk */
	__u32 bytes;
	__u32 inflight;
	__u8 op;
	__u8 pad[3];
};

struct block_submit {
	__u64 bio;
	__u64 ts;    /* 0 unless the disk is under tag pressure */
	__u64 nvcsw; /* voluntary switches at submission: a change means it slept */
};

/* Sized from the machine by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct block_device_stats);
} block_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct request * */
	__type(value, struct block_request);
} block_requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* struct bio * */
	__type(value, __u64); /* ns waited from submission to request */
} block_tagwaits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct block_submit);
} block_submits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BLOCK_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} block_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} block_outliers SEC(".maps");

/* A wait for a request shorter than this is not worth a map write. */
const volatile __u64 tagwait_min_ns = 20000;

/* Set by user space; ~0 (the default) turns the outlier path off. */
const volatile __u64 outlier_service_ns = ~0ULL;
const volatile __u64 outlier_queue_ns = ~0ULL;

/* Make the enums and structs visible to bpf2go. */
const enum block_op *unused_block_op __attribute__((unused));
const enum block_drop *unused_block_drop __attribute__((unused));
const struct block_outlier *unused_block_outlier __attribute__((unused));

/* Read a kernel field: a plain BTF load in tp_btf programs, a CO-RE probe read
 * in raw_tp ones. btf is a constant, so the other branch is compiled away. */
#define RD(btf, expr)                                                  \
	({                                                             \
		typeof(expr) __v;                                      \
		if (btf)                                               \
			__v = (expr);                                  \
		else                                                   \
			bpf_core_read(&__v, sizeof(__v), &(expr));     \
		__v;                                                   \
	})

/* Add one observation. The index checks keep the verifier sure of the
 * bounds; barrier_var stops clang from proving them redundant. */
static __always_inline void hist_add(__u64 *slots, __u64 *sum, __u64 v)
{
	__u64 b = BOUNDED(hist_bucket(v), HIST_BUCKETS);

	__sync_fetch_and_add(&slots[b], 1);
	__sync_fetch_and_add(sum, v);
}

static __always_inline void drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&block_drops, &reason);

	if (n)
		*n += 1;
}

static __always_inline __u32 op_of(__u32 cmd_flags)
{
	switch (cmd_flags & 0xff) { /* REQ_OP_MASK */
	case 0: return BLOCK_OP_READ;
	case 1: return BLOCK_OP_WRITE;
	case 2: return BLOCK_OP_FLUSH;
	case 3: return BLOCK_OP_DISCARD;
	default: return BLOCK_OP_OTHER;
	}
}

static __always_inline __u32 class_of(__s64 inflight)
{
	if (inflight <= 0)
		return 0;
	if (inflight < 4)
		return 1;
	if (inflight < 16)
		return 2;
	return 3;
}

/* A slot whose queue id now belongs to another disk starts from zero. */
static __noinline int slot_reset(struct block_device_stats *d, __u32 dev)
{
	/* volatile: keeps clang from turning the loop into memset, which BPF lacks */
	volatile __u64 *w = (volatile __u64 *)d;
	__u32 i;

	if (!d)
		return 0;
	for (i = 0; i < sizeof(*d) / sizeof(__u64); i++)
		w[i] = 0;
	d->dev = dev;
	return 0;
}

static __always_inline struct block_device_stats *slot_get(__u32 slot)
{
	struct block_device_stats *d = bpf_map_lookup_elem(&block_devices, &slot);

	if (!d)
		drop(BLOCK_DROP_DEVICE_SLOTS);
	return d;
}

/* Adds the queue time to the histogram and returns it (0: unknown). */
static __always_inline __u64 queue_add(struct block_device_stats *d, __u64 op,
				       __u64 start, __u64 issued, __u64 waited)
{
	__u64 q;

	/* The kernel's stamps may come from a per-plug cached clock, so the
	 * start can read a hair later than the issue: that is no wait. */
	if (start)
		q = (start <= issued ? issued - start : 0) + waited;
	else if (waited)
		q = waited;
	else {
		__sync_fetch_and_add(&d->queue_unknown[op], 1);
		return 0;
	}
	hist_add(d->queue[op], &d->queue_sum_ns[op], q);
	return q;
}

/*
 * Issue. When the kernel stamps io_start_time_ns itself (its I/O statistics
 * are on: writeback throttling, iolatency, ...), issue reads no clock: the
 * completion computes queue and service time from the kernel's stamps. A
 * disk learns that at its first completion; if the stamps stop, the next
 * completion turns our own clock back on.
 */
static __always_inline int on_issue(struct request *rq, const bool btf)
{
	struct block_device_stats *d;
	struct block_request *r;
	struct request_queue *q;
	struct gendisk *disk;
	__u64 now = 0, waited = 0, op, class, pid_tgid;
	__s64 inflight;
	__u32 slot, dev;

	q = RD(btf, rq->q);
	if (!q)
		return 0;
	disk = RD(btf, q->disk);
	if (!disk)
		return 0;
	slot = RD(btf, q->id);
	dev = ((__u32)RD(btf, disk->major) << 20) | (__u32)RD(btf, disk->first_minor);

	d = slot_get(slot);
	if (!d)
		return 0;
	if (d->dev != dev)
		slot_reset(d, dev);

	op = BOUNDED(op_of(RD(btf, rq->cmd_flags)), BLOCK_OPS);

	if (d->tagwaits_pending > 0) {
		__u64 bio = (__u64)RD(btf, rq->bio);
		__u64 *w = bpf_map_lookup_elem(&block_tagwaits, &bio);

		if (w) {
			waited = *w;
			bpf_map_delete_elem(&block_tagwaits, &bio);
			__sync_fetch_and_add(&d->tagwaits_pending, -1);
		}
	}
	if (!d->kernel_issue_ts) {
		now = bpf_ktime_get_ns();
		/* From here on waited_ns holds the queue time, for outliers. */
		waited = queue_add(d, op, RD(btf, rq->start_time_ns), now, waited);
	}

	/* In flight before this one; a racy read is fine for a class. */
	inflight = d->inflight;
	class = class_of(inflight);
	inflight = inflight < 0 ? 0 : inflight > 0xffff ? 0xffff : inflight;
	/* The issuing task, for outliers: one helper call and one store. At
	 * issue the current task is the submitter when it dispatches directly,
	 * a kworker when the queue was run asynchronously. */
	pid_tgid = bpf_get_current_pid_tgid();

	r = bpf_map_lookup_elem(&block_requests, &rq);
	if (r) {
		if (r->issue_ns) /* issued again without completing: a requeue we missed */
			__sync_fetch_and_add(&d->inflight, -1);
		r->slot = slot;
		r->op = op;
		r->class = class;
		r->inflight = inflight;
		r->pid_tgid = pid_tgid;
		r->waited_ns = waited;
		r->issue_ns = now ? now : 1;
	} else {
		struct block_request n = {
			.issue_ns = now ? now : 1, .waited_ns = waited,
			.pid_tgid = pid_tgid, .slot = slot, .op = op, .class = class,
			.inflight = inflight,
		};
		__u64 key = (__u64)rq;

		if (bpf_map_update_elem(&block_requests, &key, &n, BPF_ANY)) {
			drop(BLOCK_DROP_REQUEST_MAP);
			return 0;
		}
	}
	__sync_fetch_and_add(&d->inflight, 1);
	return 0;
}

/* The cgroup the request's first bio is charged to (bio->bi_blkg, which
 * exists with CONFIG_BLK_CGROUP; blkcg_gq since 4.2), or 0. */
static __always_inline __u64 request_cgroup(struct request *rq)
{
	struct bio *bio = BPF_CORE_READ(rq, bio);

	if (!bio || !bpf_core_field_exists(bio->bi_blkg))
		return 0;
	return BPF_CORE_READ(bio, bi_blkg, blkcg, css.cgroup, kn, id);
}

/* Sends one outlier: the completed request rq, whose state r holds its
 * queue time in waited_ns by now. Out of line, so that the completion
 * programs stay small; the reads here are CO-RE probe reads whichever hook
 * runs. At the final completion __sector and __data_len are the request's
 * own, unless an earlier partial completion (rare in blk-mq) already
 * advanced them past the part it ended. */
static __noinline int emit_outlier(struct request *rq, struct block_request *r,
				   __u32 dev, __u64 now, __u64 svc)
{
	struct block_outlier *e;

	e = outlier_reserve(&block_outliers, sizeof(*e), now);
	if (!e)
		return 0;
	e->ts_ns = now;
	e->sector = BPF_CORE_READ(rq, __sector);
	e->bytes = BPF_CORE_READ(rq, __data_len);
	e->queue_ns = r->waited_ns;
	e->service_ns = svc;
	e->cgroup_id = request_cgroup(rq);
	e->tgid = r->pid_tgid >> 32;
	e->pid = (__u32)r->pid_tgid;
	e->dev = dev;
	e->inflight = r->inflight;
	e->op = r->op;
	e->pad[0] = e->pad[1] = e->pad[2] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __always_inline int on_complete(struct request *rq, int error,
				       unsigned int nr_bytes, const bool btf)
{
	struct block_device_stats *d;
	struct block_request *r;
	__u64 now, svc, issued, kissued, waited, op, class, oc, queue;
	__u32 slot;

	/* A partial completion: the request goes on. */
	if (nr_bytes < RD(btf, rq->__data_len))
		return 0;

	r = bpf_map_lookup_elem(&block_requests, &rq);
	if (!r || !r->issue_ns) {
		/* Never started (MQ_RQ_IDLE): e.g. the empty flush that blk-flush
		 * completes on behalf of its own flush request. Not a loss. */
		if (RD(btf, rq->state) != MQ_RQ_IDLE)
			drop(BLOCK_DROP_UNMATCHED);
		return 0;
	}
	issued = r->issue_ns;
	waited = r->waited_ns;
	r->issue_ns = 0;
	slot = r->slot;
	op = r->op;
	class = r->class;

	d = slot_get(slot);
	if (!d)
		return 0;
	if (op >= BLOCK_OPS || class >= BLOCK_CLASSES)
		return 0;
	op = BOUNDED(op, BLOCK_OPS);

	now = bpf_ktime_get_ns();
	kissued = RD(btf, rq->io_start_time_ns);
	if (issued == 1) {
		/* Issued without our clock: the kernel's stamp must be there. */
		if (!kissued || kissued > now) {
			d->kernel_issue_ts = 0;
			drop(BLOCK_DROP_UNMATCHED);
			__sync_fetch_and_add(&d->inflight, -1);
			return 0;
		}
		issued = kissued;
		queue = queue_add(d, op, RD(btf, rq->start_time_ns), issued, waited);
	} else {
		queue = waited; /* computed at issue */
		if (kissued && !d->kernel_issue_ts)
			d->kernel_issue_ts = 1; /* from the next issue on */
	}

	svc = now > issued ? now - issued : 0;
	oc = BOUNDED(op * BLOCK_CLASSES + class, BLOCK_OPS * BLOCK_CLASSES);
	hist_add(((__u64(*)[HIST_BUCKETS])d->service)[oc],
		 &((__u64 *)d->service_sum_ns)[oc], svc);
	__sync_fetch_and_add(&d->requests[op], 1);
	if (error)
		__sync_fetch_and_add(&d->errors[op], 1);
	__sync_fetch_and_add(&d->inflight, -1);
	/* The outlier path: under both thresholds, two comparisons. */
	if (svc >= outlier_service_ns || queue >= outlier_queue_ns) {
		r->waited_ns = queue; /* not in flight any more: free to carry it */
		emit_outlier(rq, r, d->dev, now, svc);
	}
	return 0;
}

static __always_inline int on_requeue(struct request *rq)
{
	struct block_device_stats *d;
	struct block_request *r;

	r = bpf_map_lookup_elem(&block_requests, &rq);
	if (!r || !r->issue_ns)
		return 0;
	r->issue_ns = 0;
	d = slot_get(r->slot);
	if (d)
		__sync_fetch_and_add(&d->inflight, -1);
	return 0;
}

/* ---- tp_btf (5.5+): direct, BTF-checked loads ---- */

SEC("tp_btf/block_rq_issue")
int BPF_PROG(nrv_rq_issue, struct request *rq)
{
	return on_issue(rq, true);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(nrv_rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	return on_complete(rq, error, nr_bytes, true);
}

SEC("tp_btf/block_rq_requeue")
int BPF_PROG(nrv_rq_requeue, struct request *rq)
{
	return on_requeue(rq);
}

/*
 * Tag waits (tp_btf and task storage, 5.11+). block_bio_queue and
 * block_getrq fire in the submitting task, before and after it waits for a
 * request and driver tag; with the `none` scheduler that wait is the only
 * queueing there is, and block_rq_insert never fires.
 */
SEC("tp_btf/block_bio_queue")
int BPF_PROG(nrv_bio_queue, struct bio *bio)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct block_device_stats *d;
	struct block_submit *s;
	__u32 slot;

	s = bpf_task_storage_get(&block_submits, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->bio = (__u64)bio;
	s->nvcsw = task->nvcsw;
	s->ts = 0;
	/* Read the clock only while this disk has recently made submitters
	 * sleep for a tag: most submissions never wait, and a clock read is
	 * the dearest thing here. */
	slot = bio->bi_bdev->bd_disk->queue->id;
	d = bpf_map_lookup_elem(&block_devices, &slot);
	if (d && d->tag_pressure_until > bpf_jiffies64())
		s->ts = bpf_ktime_get_ns();
	return 0;
}

/* A bio split to the device's limits continues as the split part. */
SEC("tp_btf/block_split")
int BPF_PROG(nrv_bio_split, struct bio *bio, unsigned int new_sector)
{
	struct block_submit *s;

	s = bpf_task_storage_get(&block_submits, bpf_get_current_task_btf(), 0, 0);
	if (s && s->bio)
		s->bio = (__u64)bio;
	return 0;
}

SEC("tp_btf/block_getrq")
int BPF_PROG(nrv_getrq, struct bio *bio)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct block_device_stats *d;
	struct block_submit *s;
	__u64 key, waited, ts;
	__u32 slot;

	s = bpf_task_storage_get(&block_submits, task, 0, 0);
	if (!s || s->bio != (__u64)bio)
		return 0;
	s->bio = 0;
	if (s->nvcsw == task->nvcsw)
		return 0; /* did not sleep: no tag wait worth the name */
	ts = s->ts;

	slot = bio->bi_bdev->bd_disk->queue->id;
	d = slot_get(slot);
	if (!d)
		return 0;
	/* It slept for a request: time this disk's submissions for a while.
	 * HZ is at least 100, so this is at most 10 s. */
	d->tag_pressure_until = bpf_jiffies64() + 1000;
	if (!ts)
		return 0; /* the first wait after a quiet spell goes unmeasured */
	waited = bpf_ktime_get_ns() - ts;
	if (waited < tagwait_min_ns)
		return 0;
	key = (__u64)bio;
	if (bpf_map_update_elem(&block_tagwaits, &key, &waited, BPF_ANY)) {
		drop(BLOCK_DROP_TAGWAIT_MAP);
		return 0;
	}
	__sync_fetch_and_add(&d->tagwaits_pending, 1);
	return 0;
}

/* ---- raw_tp fallback (4.17+): CO-RE probe reads ---- */

SEC("raw_tp/block_rq_issue")
int BPF_PROG(nrv_rq_issue_r, struct request *rq)
{
	return on_issue(rq, false);
}

/* Before 5.11 (a54895fa057c) these tracepoints also took the queue. */
SEC("raw_tp/block_rq_issue")
int BPF_PROG(nrv_rq_issue_q, struct request_queue *q, struct request *rq)
{
	return on_issue(rq, false);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(nrv_rq_complete_r, struct request *rq, int error, unsigned int nr_bytes)
{
	return on_complete(rq, error, nr_bytes, false);
}

SEC("raw_tp/block_rq_requeue")
int BPF_PROG(nrv_rq_requeue_r, struct request *rq)
{
	return on_requeue(rq);
}

SEC("raw_tp/block_rq_requeue")
int BPF_PROG(nrv_rq_requeue_q, struct request_queue *q, struct request *rq)
{
	return on_requeue(rq);
}
