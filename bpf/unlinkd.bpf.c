// SPDX-License-Identifier: GPL-2.0
/*
 * unlinkd's kernel side: counts every call of do_unlinkat (op unlink) and
 * do_rmdir (op rmdir) per process, applies the filters before counting, and
 * streams detail (names, paths, cgroup, executable) to user space when it
 * asks for it.
 *
 * Three attach modes feed the same maps: fentry/fexit and kprobe/kretprobe
 * on both functions, and the unlink/unlinkat/rmdir syscall tracepoints. The SEC() programs at the bottom
 * are thin; the logic is the hot path above them (on_entry filters and
 * claims a call, on_exit counts it) and the helpers it calls, one concern a
 * header: task.bpf.h (pids), path.bpf.h (absolute paths), cgroup.bpf.h,
 * filter.bpf.h and stream.bpf.h. Exactly-once across modes: every entry
 * program claims the call in the thread's task-local storage only if no
 * attachment holds it (the first wins), and the first exit program to find
 * the claim clears it and counts.
 *
 * Top to bottom: the includes, the maps and the helpers that reach them,
 * the helper headers, the hot path, the attach points.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "compat.h"
#include "unlinkd.h"
#include "scratch.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before each load: every attachment (one load of this
 * object for one mode) has its own id, kept in the claims it makes and
 * counted in its slot of the open-claim counters, so a replaced attachment
 * can be drained before it is detached. */
const volatile __u32 attachment_id = 0;
/* False for a load that only tries whether a mode works: it must not claim
 * calls, since detaching it right after would lose their exits. */
const volatile bool claims_calls = true;

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200

/* ---- maps (their keys and values are the ABI, unlinkd.h) ---- */

/* Task-local storage: a look-up is a pointer walk from the task, no hash,
 * and the thread's claim lives as long as the thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct unlinkd_claim);
} claims SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* user space sizes it before load */
	__type(key, struct unlinkd_process_key);
	__type(value, struct unlinkd_process);
} processes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unlinkd_totals);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unlinkd_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UNLINKD_FILTER_GENERATIONS * UNLINKD_MAX_FILTER_RULES);
	__type(key, struct unlinkd_filter_key);
	__type(value, __u32);
} filter_rules SEC(".maps");

/* Never used by the programs: user space updates sync_outer to make the
 * kernel wait until every running BPF program has finished. */
struct sync_inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sync_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct sync_inner_map);
} sync_outer SEC(".maps") = {
	.values = { [0] = &sync_inner },
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unlinkd_stream_budget);
} stream_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* user space sizes it before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline struct unlinkd_totals *get_totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&totals, &zero);
}

/* Atomic even on a per-CPU value: tracing programs run with migration, not
 * preemption, disabled, so two tasks can interleave on one CPU. */
static __always_inline void bump(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

static __always_inline const struct unlinkd_filter_meta *filter_meta_of(const struct unlinkd_config *cfg,
								       __u32 generation)
{
	return &cfg->filter_metas[UNLINKD_FILTER_META_SLOT(generation)];
}

/* The calling thread's claim, created empty on first use when `create`. */
static __always_inline struct unlinkd_claim *thread_claim(bool create)
{
	return bpf_task_storage_get(&claims, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* The helper headers are included here, after the maps, not at the top:
 * they use the maps and get_scratch/get_totals/bump, and C wants a name
 * declared before its use. The maps stay in this file so that all of them,
 * the programs' whole state, are read in one place. The headers are parts of
 * this one translation unit (one object, one skeleton), never built alone;
 * each includes the headers it needs. scratch.bpf.h alone is at the top:
 * the `scratch` map's value is its struct. */
#include "task.bpf.h"
#include "path.bpf.h"
#include "cgroup.bpf.h"
#include "filter.bpf.h"
#include "stream.bpf.h"

/* ---- the hot path: entry and exit ---- */

/* do_unlinkat or do_rmdir starts: decide (filters), claim the call
 * (the thread's claim), and stream the names if user space wants events.
 * `name` is a struct filename * (kernel modes) or the syscall's user pointer
 * (tracepoint mode). */
static __always_inline void on_entry(enum unlinkd_mode mode, enum unlinkd_op op, int dfd, const void *name,
				     bool user)
{
	__u32 zero = 0, gen, used, given_len = 0;
	/* Fetched only when a filter or the stream needs it. The kernel's typed
	 * pointer (BTF): its fields are plain loads, not a helper call each. */
	struct task_struct *task = NULL;
	const struct unlinkd_filter_meta *meta;
	struct unlinkd_config *cfg;
	struct unlinkd_claim *claim;
	struct unlinkd_totals *t;
	struct scratch *s = NULL;
	bool wanted, stream, need_name, path_filter, deferred = false;
	__u64 now;

	if (!claims_calls)
		return;
	claim = thread_claim(true);
	t = get_totals();
	if (!t)
		return;
	if (!claim) {
		bump(&t->inflight_overflows); /* no memory, or task storage busy on this CPU */
		return;
	}
	if (claim->attachment) {
		if (claim->attachment != attachment_id)
			return; /* another attached mode saw this call first */
		/* Our own claim of an earlier call of this thread: its exit
		 * never ran. Count it as lost and closed, then claim this call
		 * (before the retiring test: a retiring attachment's open
		 * claims must only ever go down). */
		claim->attachment = 0;
		bump(&t->lost_exits);
		bump(&t->claims_closed[UNLINKD_CLAIM_SLOT(attachment_id)]);
	}
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || cfg->retiring_attachment == attachment_id)
		return; /* being replaced: the new attachment claims the call */
	gen = cfg->filter_generation; /* once: the daemon may flip it meanwhile */
	meta = filter_meta_of(cfg, gen);
	used = meta->include_fields | meta->exclude_fields;
	wanted = cfg->flags & UNLINKD_CONFIG_STREAM_EVENTS;
	path_filter = used & (1u << UNLINKD_FILTER_PATH);
	/* Without a path filter the budget is asked first, so an event it
	 * refuses costs no path resolution; with one, after the path passed. */
	now = bpf_ktime_get_ns(); /* once: the budget's window and the call's start */
	stream = wanted && (path_filter || stream_token(cfg, now));
	need_name = stream || path_filter;
	if (need_name || (used & (1u << UNLINKD_FILTER_UNIT))) {
		s = get_scratch();
		if (!s)
			return;
		s->flags = 0;
		s->cg_depth = 0;
	}

	if (used) {
		task = bpf_get_current_task_btf();
		if (used & (1u << UNLINKD_FILTER_PID)) {
			struct ids ids = {};

			task_ids(task, cfg, &ids);
			if (!passes(rule_lookup(gen, UNLINKD_FILTER_PID, &ids.pid, 4), UNLINKD_FILTER_PID, meta))
				return;
		}
		if (used & (1u << UNLINKD_FILTER_UID)) {
			__u32 uid = (__u32)bpf_get_current_uid_gid();

			if (!passes(rule_lookup(gen, UNLINKD_FILTER_UID, &uid, 4), UNLINKD_FILTER_UID, meta))
				return;
		}
		if (used & (1u << UNLINKD_FILTER_OP)) {
			__u32 op_value = op;

			if (!passes(rule_lookup(gen, UNLINKD_FILTER_OP, &op_value, 4), UNLINKD_FILTER_OP, meta))
				return;
		}
		if (used & (1u << UNLINKD_FILTER_LOGINUID)) {
			__u32 loginuid = task_loginuid(task);

			if (!passes(rule_lookup(gen, UNLINKD_FILTER_LOGINUID, &loginuid, 4), UNLINKD_FILTER_LOGINUID,
				    meta))
				return;
		}
		if (used & (1u << UNLINKD_FILTER_COMM)) {
			char comm[UNLINKD_COMM_LEN] = {};

			bpf_get_current_comm(comm, sizeof(comm));
			if (!passes(rule_lookup(gen, UNLINKD_FILTER_COMM, comm, 16), UNLINKD_FILTER_COMM, meta))
				return;
		}
		if (s && (used & (1u << UNLINKD_FILTER_UNIT))) {
			struct unit_ctx uc = { .generation = gen };

			collect_cgroups(s, task, cfg);
			bpf_loop(UNLINKD_MAX_CGROUP_DEPTH, unit_rule_step, &uc, 0);
			if (!passes(uc.hits, UNLINKD_FILTER_UNIT, meta))
				return;
		}
	}
	if (s && need_name) {
		if (!task)
			task = bpf_get_current_task_btf();
		given_len = build_path(s, task, dfd, name, user);
		if (user && (s->flags & UNLINKD_EVENT_NAME_TRUNCATED))
			deferred = true; /* not faulted in yet: the exit reads it */
		else if (path_filter && !path_passes(s, gen, meta))
			return;
		else if (path_filter && wanted)
			stream = stream_token(cfg, now);
	}

	claim->start_ns = now;
	claim->mode = mode;
	claim->op = op;
	claim->streamed = stream && !deferred;
	claim->deferred = deferred;
	claim->unstreamed = wanted && !stream;
	claim->dfd = dfd;
	claim->name_ptr = (__u64)name;
	claim->attachment = attachment_id;
	bump(&t->claims_opened[UNLINKD_CLAIM_SLOT(attachment_id)]);
	if (!claim->streamed || !s)
		return;
	/* Set when the name was read; the verifier cannot know that. */
	if (!task)
		task = bpf_get_current_task_btf();
	if (stream_entry(s, task, cfg, mode, op, (__u32)bpf_get_current_pid_tgid(), now, given_len))
		claim->streamed = 0;
}

/* Helpers are called only where needed: on the counting path each is a
 * noticeable share of the cost (bench part kstats). */
static __always_inline void count_process(int result, struct unlinkd_claim *claim, struct unlinkd_totals *t)
{
	struct unlinkd_process_key key = {};
	struct unlinkd_process *p;
	__u64 now = claim->start_ns; /* the call's start: one clock read per call */

	if (!claim->key_known) {
		struct task_struct *task = bpf_get_current_task_btf();

		claim->tgid = bpf_get_current_pid_tgid() >> 32;
		claim->leader_start_ns = task->group_leader->start_time;
		claim->key_known = 1;
	}
	key.tgid = claim->tgid;
	key.start_ns = claim->leader_start_ns;
	p = bpf_map_lookup_elem(&processes, &key);
	if (!p) {
		struct task_struct *task = bpf_get_current_task_btf();
		struct unlinkd_process init = {};
		struct unlinkd_config *cfg;
		struct ids ids = {};
		__u32 zero = 0;

		cfg = bpf_map_lookup_elem(&config, &zero);
		if (cfg) {
			task_ids(task, cfg, &ids);
			init.pid = ids.pid;
		}
		init.first_ns = now;
		init.uid = (__u32)bpf_get_current_uid_gid();
		init.loginuid = task_loginuid(task);
		init.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(init.comm, sizeof(init.comm));
		if (!bpf_map_update_elem(&processes, &key, &init, BPF_NOEXIST))
			bump(&t->new_processes);
		p = bpf_map_lookup_elem(&processes, &key);
		if (!p)
			return;
	}
	bump(result == 0 ? &p->deletes : &p->failures);
	p->last_ns = now;
}

/* The part of on_entry that needed the user-space name, done at exit for a
 * deferred entry. Returns false when the path filter drops the deletion. */
static __always_inline bool late_entry(const struct unlinkd_claim *fl, __u32 ktid, bool *streamed,
				       bool *unstreamed)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct unlinkd_filter_meta *meta;
	struct unlinkd_config *cfg;
	struct scratch *s = get_scratch();
	__u32 zero = 0, gen, given_len;
	bool path_filter;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !s)
		return true;
	gen = cfg->filter_generation;
	meta = filter_meta_of(cfg, gen);
	s->flags = 0;
	s->cg_depth = 0;
	given_len = build_path(s, task, fl->dfd, (const void *)fl->name_ptr, true);
	path_filter = (meta->include_fields | meta->exclude_fields) & (1u << UNLINKD_FILTER_PATH);
	if (path_filter && !path_passes(s, gen, meta))
		return false;
	/* The entry asked the budget unless a path filter had to pass first. */
	if ((cfg->flags & UNLINKD_CONFIG_STREAM_EVENTS) && !fl->unstreamed) {
		if (path_filter && !stream_token(cfg, bpf_ktime_get_ns()))
			*unstreamed = true;
		else
			*streamed = !stream_entry(s, task, cfg, fl->mode, fl->op, ktid, fl->start_ns, given_len);
	}
	return true;
}

/* do_unlinkat or do_rmdir returns: the first exit program to find the
 * thread's claim clears it and counts, under the op its entry recorded. */
static __always_inline void on_exit(int result)
{
	__u32 owner;
	struct unlinkd_claim *claim = thread_claim(false);
	struct unlinkd_totals *t;
	bool streamed, unstreamed;
	__u32 op;

	if (!claim || !claim->attachment)
		return; /* not claimed, or another attached mode counted it */
	owner = claim->attachment;
	claim->attachment = 0;
	t = get_totals();
	if (!t)
		return;
	bump(&t->claims_closed[UNLINKD_CLAIM_SLOT(owner)]);
	streamed = claim->streamed;
	unstreamed = claim->unstreamed;
	if (claim->deferred && !late_entry(claim, (__u32)bpf_get_current_pid_tgid(), &streamed, &unstreamed))
		return;
	/* One counter per op; user space sums them for the totals. The op is
	 * one of two constants the programs set; the test bounds the index for
	 * the verifier. */
	op = claim->op == UNLINKD_OP_RMDIR ? UNLINKD_OP_RMDIR : UNLINKD_OP_UNLINK;
	bump(result == 0 ? &t->op_deletes[op] : &t->op_failures[op]);
	if (unstreamed)
		bump(&t->events_unstreamed);
	count_process(result, claim, t);
	if (streamed) {
		struct unlinkd_exit_record rec = {
			.kind = UNLINKD_RECORD_EXIT,
			.mode = claim->mode,
			.kernel_tid = (__u32)bpf_get_current_pid_tgid(),
			.result = result,
		};

		if (bpf_ringbuf_output(&events, &rec, sizeof(rec), 0))
			bump(&t->ringbuf_drops);
	}
}

/* ---- attach points ---- */

/* io_uring's IORING_OP_UNLINKAT calls do_unlinkat, or do_rmdir with
 * AT_REMOVEDIR (io_unlinkat), from its worker: the kernel-function modes see
 * both, the syscall tracepoints neither. */

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_do_unlinkat, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_FENTRY, UNLINKD_OP_UNLINK, dfd, name, false);
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_do_unlinkat, int dfd, struct filename *name, int ret)
{
	on_exit(ret);
	return 0;
}

SEC("fentry/do_rmdir")
int BPF_PROG(fentry_do_rmdir, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_FENTRY, UNLINKD_OP_RMDIR, dfd, name, false);
	return 0;
}

SEC("fexit/do_rmdir")
int BPF_PROG(fexit_do_rmdir, int dfd, struct filename *name, int ret)
{
	on_exit(ret);
	return 0;
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(kprobe_do_unlinkat, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_KPROBE, UNLINKD_OP_UNLINK, dfd, name, false);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(kretprobe_do_unlinkat, long ret)
{
	on_exit((int)ret);
	return 0;
}

SEC("kprobe/do_rmdir")
int BPF_KPROBE(kprobe_do_rmdir, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_KPROBE, UNLINKD_OP_RMDIR, dfd, name, false);
	return 0;
}

SEC("kretprobe/do_rmdir")
int BPF_KRETPROBE(kretprobe_do_rmdir, long ret)
{
	on_exit((int)ret);
	return 0;
}

/* unlinkat(2) reaches do_unlinkat with flag 0 and do_rmdir with
 * AT_REMOVEDIR; any other flag is EINVAL before either, so no deletion.
 * The flag is an int: the kernel ignores the register's upper half. */
SEC("tracepoint/syscalls/sys_enter_unlinkat")
int tp_sys_enter_unlinkat(struct trace_event_raw_sys_enter *ctx)
{
	int flags = (int)ctx->args[2];

	if (flags != 0 && flags != AT_REMOVEDIR)
		return 0;
	on_entry(UNLINKD_MODE_TRACEPOINT, flags ? UNLINKD_OP_RMDIR : UNLINKD_OP_UNLINK, (int)ctx->args[0],
		 (const void *)ctx->args[1], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unlinkat")
int tp_sys_exit_unlinkat(struct trace_event_raw_sys_exit *ctx)
{
	on_exit((int)ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unlink")
int tp_sys_enter_unlink(struct trace_event_raw_sys_enter *ctx)
{
	on_entry(UNLINKD_MODE_TRACEPOINT, UNLINKD_OP_UNLINK, AT_FDCWD, (const void *)ctx->args[0], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unlink")
int tp_sys_exit_unlink(struct trace_event_raw_sys_exit *ctx)
{
	on_exit((int)ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_rmdir")
int tp_sys_enter_rmdir(struct trace_event_raw_sys_enter *ctx)
{
	on_entry(UNLINKD_MODE_TRACEPOINT, UNLINKD_OP_RMDIR, AT_FDCWD, (const void *)ctx->args[0], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_rmdir")
int tp_sys_exit_rmdir(struct trace_event_raw_sys_exit *ctx)
{
	on_exit((int)ctx->ret);
	return 0;
}
