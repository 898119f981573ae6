/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef NERVE_TASK_H
#define NERVE_TASK_H

#define NERVE_TASK_RUNNING 0x0000
#define NERVE_TASK_UNINTERRUPTIBLE 0x0002

/* Before Linux 5.14 (2f064a59a11f) the task state was `long state`. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___pre514 *)t)->state;
}

#endif /* NERVE_TASK_H */
