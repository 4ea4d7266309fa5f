/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pids as seen from the daemon's pid namespace: the pid, tid and ppid that
 * records and the pid filter use, translated when the daemon runs in a
 * nested namespace (a container). Uses no map: the namespace comes in cfg.
 */
#ifndef UNLINKD_TASK_BPF_H
#define UNLINKD_TASK_BPF_H

/* The pid's number in the daemon's namespace: the one of its upids (one
 * per namespace level, the initial one first) whose namespace is the
 * daemon's; 0 when the daemon's namespace cannot see it. */
static __always_inline __u32 pid_nr_in_ns(struct pid *pid, const struct unlinkd_config *cfg)
{
	unsigned int level, i;
	struct upid *up;

	if (!pid)
		return 0;
	level = BPF_CORE_READ(pid, level);
	for (i = 1; i <= UNLINKD_MAX_PIDNS_LEVEL; i++) {
		if (i > level)
			break;
		up = (void *)pid + bpf_core_field_offset(struct pid, numbers) + i * bpf_core_type_size(struct upid);
		if (BPF_CORE_READ(up, ns, ns.inum) == cfg->pidns_ino)
			return BPF_CORE_READ(up, nr);
	}
	return 0;
}

struct ids {
	__u32 pid, tid, ppid;
};

static __always_inline void task_ids(struct task_struct *task, const struct unlinkd_config *cfg,
				     struct ids *ids)
{
	if (!cfg->pidns_nested) {
		__u64 id = bpf_get_current_pid_tgid();

		ids->pid = id >> 32;
		ids->tid = (__u32)id;
		ids->ppid = task->real_parent->tgid;
		return;
	}
	ids->tid = pid_nr_in_ns(BPF_CORE_READ(task, thread_pid), cfg);
	ids->pid = pid_nr_in_ns(BPF_CORE_READ(task, group_leader, thread_pid), cfg);
	ids->ppid = pid_nr_in_ns(BPF_CORE_READ(task, real_parent, group_leader, thread_pid), cfg);
}

#endif /* UNLINKD_TASK_BPF_H */
