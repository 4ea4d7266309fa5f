/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The cgroup v2 path of the current task: collect_cgroups walks its cgroup's
 * kernfs nodes up to the daemon's cgroup namespace root into s->cgroups,
 * for the unit filter and for streaming, and append_cgroup_component joins
 * their names into s->cg. Part of unlinkd.bpf.c: included after its maps,
 * it uses the `scratch` map (get_scratch) from there.
 */
#ifndef UNLINKD_CGROUP_BPF_H
#define UNLINKD_CGROUP_BPF_H

#include "compat.h"
#include "scratch.bpf.h"

struct cg_walk_ctx {
	struct kernfs_node *kn;
	__u64 root_id; /* the daemon's cgroup namespace root: stop there */
};

static long cgroup_walk_step(__u32 i, struct cg_walk_ctx *c)
{
	struct scratch *s = get_scratch();
	struct kernfs_node *parent, *kn = c->kn; /* BPF_CORE_READ relocates its whole argument */

	if (!s || !kn)
		return 1;
	if (c->root_id && BPF_CORE_READ(kn, id) == c->root_id)
		return 1;
	parent = kernfs_parent(kn);
	if (!parent) /* the root's name is not part of the path */
		return 1;
	if (s->cg_depth >= UNLINKD_MAX_CGROUP_DEPTH) {
		s->flags |= UNLINKD_EVENT_CGROUP_TRUNCATED;
		return 1;
	}
	s->cgroups[s->cg_depth & (UNLINKD_MAX_CGROUP_DEPTH - 1)] = (__u64)kn;
	s->cg_depth++;
	c->kn = parent;
	return 0;
}

/* Fills s->cgroups with the task's cgroup v2 directories, leaf first. */
static __always_inline void collect_cgroups(struct scratch *s, struct task_struct *task,
					    const struct unlinkd_config *cfg)
{
	struct cg_walk_ctx c = {
		.kn = task->cgroups->dfl_cgrp->kn,
		.root_id = cfg->cgroupns_root_id,
	};

	s->cg_depth = 0;
	bpf_loop(UNLINKD_MAX_CGROUP_DEPTH + 1, cgroup_walk_step, &c, 0);
}

static long append_cgroup_component(__u32 i, __u32 *len)
{
	struct scratch *s = get_scratch();
	struct kernfs_node *kn;
	long n;

	if (!s || i >= s->cg_depth)
		return 1;
	kn = (void *)s->cgroups[(s->cg_depth - 1 - i) & (UNLINKD_MAX_CGROUP_DEPTH - 1)];
	n = bpf_probe_read_kernel_str(s->name, NAME_BUF, BPF_CORE_READ(kn, name));
	if (n <= 1)
		return 1;
	if (*len + n > UNLINKD_CGROUP_PATH_MAX) { /* n counts the NUL: room for the '/' */
		s->flags |= UNLINKD_EVENT_CGROUP_TRUNCATED;
		return 1;
	}
	s->cg[*len & CG_MASK] = '/';
	barrier_var(n);
	bpf_probe_read_kernel(&s->cg[(*len + 1) & CG_MASK], (n - 1) & (NAME_BUF - 1), s->name);
	*len += n;
	return 0;
}

#endif /* UNLINKD_CGROUP_BPF_H */
