/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Streaming detail to user space: the per-second budget of streamed events
 * and the entry record (ids, names, path, cgroup) written to the ring
 * buffer; the exit record is small and stays in on_exit. Part of
 * unlinkd.bpf.c: included after its maps, it uses the `stream_budget`,
 * `events` and `totals` maps from there.
 */
#ifndef UNLINKD_STREAM_BPF_H
#define UNLINKD_STREAM_BPF_H

#include "scratch.bpf.h"
#include "task.bpf.h"
#include "cgroup.bpf.h"

/* One more event may be streamed this second: the daemon's consumers use at
 * most stream_per_sec a second, and resolving paths and filling the ring
 * buffer for more would be wasted. Racy across CPUs on purpose (no lock on
 * the deletion path): a few more may pass around a window change. */
static __always_inline bool stream_token(const struct unlinkd_config *cfg, __u64 now_ns)
{
	struct unlinkd_stream_budget *b;
	__u32 zero = 0, limit = cfg->stream_per_sec;
	__u64 window;

	if (!limit)
		return true;
	b = bpf_map_lookup_elem(&stream_budget, &zero);
	if (!b)
		return false;
	window = now_ns / 1000000000ULL;
	if (b->window != window) {
		b->window = window;
		b->used = 0;
	}
	if (b->used >= limit)
		return false;
	__sync_fetch_and_add(&b->used, 1);
	return true;
}

/* Only here, for a streamed event, is the executable resolved: counting
 * never pays for its path walk. */
static __always_inline int stream_entry(struct scratch *s, struct task_struct *task,
					 const struct unlinkd_config *cfg, enum unlinkd_mode mode,
					 enum unlinkd_op op, __u32 ktid, __u64 start_ns, __u32 given_len)
{
	struct unlinkd_totals *t = get_totals();
	struct ids ids = {};
	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 path_len = s->path_len & OFF_MASK, cg_len = 0, exe_len, off, size;

	if (!(s->cg_depth))
		collect_cgroups(s, task, cfg);
	bpf_loop(UNLINKD_MAX_CGROUP_DEPTH, append_cgroup_component, &cg_len, 0);
	cg_len &= CG_MASK;
	if (!cg_len) {
		s->cg[0] = '/';
		cg_len = 1;
	}
	task_ids(task, cfg, &ids);

	s->rec.kind = UNLINKD_RECORD_ENTRY;
	s->rec.mode = mode;
	s->rec.op = op;
	s->rec.flags = s->flags;
	s->rec.kernel_tid = ktid;
	s->rec.time_ns = start_ns;
	s->rec.cgroup_id = bpf_get_current_cgroup_id();
	s->rec.pid = ids.pid;
	s->rec.tid = ids.tid;
	s->rec.ppid = ids.ppid;
	s->rec.uid = (__u32)uid_gid;
	s->rec.gid = uid_gid >> 32;
	s->rec.given_len = given_len;
	s->rec.path_len = path_len;
	s->rec.cgroup_len = cg_len;
	s->rec.loginuid = task_loginuid(task);
	s->rec.sessionid = task_sessionid(task);
	bpf_get_current_comm(s->rec.comm, sizeof(s->rec.comm));
	/* The given name is already at data[0]; the path, cgroup and executable
	 * follow it. */
	bpf_probe_read_kernel(&s->data[given_len & OFF_MASK], path_len, s->path);
	bpf_probe_read_kernel(&s->data[(given_len + path_len) & 8191], cg_len, s->cg);
	off = (given_len & OFF_MASK) + path_len + cg_len;
	exe_len = resolve_exe(s, task);
	/* Bounds the verifier can see: off <= 2 * 4095 + 511, exe_len <= 4095. */
	if (off > 2 * UNLINKD_PATH_MAX + UNLINKD_CGROUP_PATH_MAX)
		exe_len = 0;
	else
		bpf_probe_read_kernel(&s->data[off], exe_len & OFF_MASK, &s->dir[s->dir_pos & OFF_MASK]);
	s->rec.exe_len = exe_len;

	size = sizeof(s->rec) + off + (exe_len & OFF_MASK);
	if (bpf_ringbuf_output(&events, &s->rec, size, 0)) {
		if (t)
			bump(&t->ringbuf_drops);
		return -1;
	}
	if (t)
		bump(&t->events_streamed);
	return 0;
}

#endif /* UNLINKD_STREAM_BPF_H */
