/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-version differences, one place. Each is decided at load time by CO-RE
 * (bpf_core_field_exists), never by the kernel version number.
 */
#ifndef UNLINKD_COMPAT_H
#define UNLINKD_COMPAT_H

#include <bpf/bpf_core_read.h>
#include "unlinkd.h"

/* kernfs_node.parent was renamed __parent in 6.15 ("kernfs: Use RCU to
 * access kernfs_node::parent"). */
struct kernfs_node___pre_6_15 {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct kernfs_node___6_15 {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kernfs_parent(struct kernfs_node *kn)
{
	struct kernfs_node___6_15 *now = (void *)kn;
	struct kernfs_node___pre_6_15 *old = (void *)kn;

	if (bpf_core_field_exists(now->__parent))
		return BPF_CORE_READ(now, __parent);
	return BPF_CORE_READ(old, parent);
}

/* The audit login uid and session exist only with CONFIG_AUDIT; without it
 * they read as unset, as /proc/PID/loginuid would say. */
struct task_struct___audit {
	kuid_t loginuid;
	unsigned int sessionid;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_loginuid(struct task_struct *task)
{
	struct task_struct___audit *t = (void *)task;

	if (!bpf_core_field_exists(t->loginuid))
		return UNLINKD_ID_UNSET;
	return t->loginuid.val;
}

static __always_inline __u32 task_sessionid(struct task_struct *task)
{
	struct task_struct___audit *t = (void *)task;

	if (!bpf_core_field_exists(t->sessionid))
		return UNLINKD_ID_UNSET;
	return t->sessionid;
}

/* do_unlinkat and do_rmdir returned long before 5.15 ("namei: update do_*() helpers to
 * return ints") and int since; the programs take the low 32 bits, which is
 * the value in both. */

#endif /* UNLINKD_COMPAT_H */
