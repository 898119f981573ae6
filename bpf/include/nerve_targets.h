/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Targets: the process groups an operator names in the config. User space
 * (probes/targets) resolves them to cgroup v2 ids and tgids and fills these
 * maps with a small target index; a probe labels its per-target series with
 * the target's name, so series stay bounded by the config.
 */
#ifndef NERVE_TARGETS_H
#define NERVE_TARGETS_H

#define MAX_TARGETS 64

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* cgroup v2 id */
	__type(value, __u32); /* target index */
} target_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* target index */
} target_tgids SEC(".maps");

/* Set by user space: skip the lookups when no target of that kind exists. */
const volatile bool have_cgroup_targets = false;
const volatile bool have_tgid_targets = false;

static __always_inline __u32 *target_of(struct task_struct *p)
{
	__u32 *idx = NULL;

	if (have_cgroup_targets) {
		__u64 cg = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);

		idx = bpf_map_lookup_elem(&target_cgroups, &cg);
	}
	if (!idx && have_tgid_targets) {
		__u32 tgid = BPF_CORE_READ(p, tgid);

		idx = bpf_map_lookup_elem(&target_tgids, &tgid);
	}
	return idx;
}

#endif /* NERVE_TARGETS_H */
