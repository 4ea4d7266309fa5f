// SPDX-License-Identifier: GPL-2.0
/*
 * unlinkd's kernel side: counts every call of do_unlinkat per process, applies
 * the filters before counting, and streams detail (names, paths, cgroup) to
 * user space when it asks for it.
 *
 * Three attach modes feed the same maps: fentry/fexit, kprobe/kretprobe and
 * the unlink/unlinkat syscall tracepoints. The SEC() programs at the bottom
 * are thin; all logic is in the helpers. Exactly-once across modes: every
 * entry program inserts into `inflight` with BPF_NOEXIST (the first wins),
 * every exit program counts only if its own delete of that entry succeeded.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "compat.h"
#include "unlinkd.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before each load: every attachment (one load of this
 * object for one mode) has its own id, kept in the inflight entries it
 * claims, so a replaced attachment can be drained before it is detached. */
const volatile __u32 attachment_id = 0;
/* False for a load that only tries whether a mode works: it must not claim
 * calls, since detaching it right after would lose their exits. */
const volatile bool claims_calls = true;

#define AT_FDCWD -100
#define EEXIST 17

/* Offsets into scratch buffers are masked so the verifier can bound them. */
#define PATH_BUF 8192		/* path[off & 4095] + up to 4095 bytes */
#define OFF_MASK 4095
#define CG_BUF 1024		/* cg[off & 511] + up to 256 bytes */
#define CG_MASK 511
#define NAME_BUF 256
#define DATA_BUF (UNLINKD_RECORD_DATA_MAX + 512)

struct scratch {
	struct unlinkd_entry_record rec;
	char data[DATA_BUF]; /* must follow rec: both go out in one output */
	char path[PATH_BUF];
	char cg[CG_BUF];
	char name[NAME_BUF];
	__u64 dentries[UNLINKD_MAX_DIR_DEPTH];	   /* leaf first */
	__u64 cgroups[UNLINKD_MAX_CGROUP_DEPTH];   /* leaf first */
	__u16 starts[UNLINKD_MAX_COMPONENTS];	   /* offset of each component's '/' */
	__u32 dir_depth;
	__u32 cg_depth;
	__u32 path_len;
	__u32 n_components;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UNLINKD_MAX_INFLIGHT);
	__type(key, __u32);
	__type(value, struct unlinkd_inflight);
} inflight SEC(".maps");

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
	__uint(max_entries, UNLINKD_FILTER_GENERATIONS);
	__type(key, __u32); /* generation */
	__type(value, struct unlinkd_filter_meta);
} filter_meta SEC(".maps");

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

/* ---- pids as seen from the daemon's pid namespace ---- */

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
		ids->ppid = BPF_CORE_READ(task, real_parent, tgid);
		return;
	}
	ids->tid = pid_nr_in_ns(BPF_CORE_READ(task, thread_pid), cfg);
	ids->pid = pid_nr_in_ns(BPF_CORE_READ(task, group_leader, thread_pid), cfg);
	ids->ppid = pid_nr_in_ns(BPF_CORE_READ(task, real_parent, group_leader, thread_pid), cfg);
}

/* ---- absolute path: resolve the directory, join the name, normalise ---- */

static __always_inline struct mount *real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

struct walk_ctx {
	struct dentry *dentry;
	struct mount *mnt;
	__u32 depth;
	int done;
};

/* One step up from a dentry: to its parent, or across a mount to the
 * mountpoint. Stops at the root of the mount tree. */
static long walk_up(__u32 i, struct walk_ctx *c)
{
	struct scratch *s = get_scratch();
	/* Locals, not c->...: BPF_CORE_READ relocates its whole argument
	 * expression, and walk_ctx is not a kernel type. */
	struct dentry *d = c->dentry, *up;
	struct mount *mnt = c->mnt, *parent;

	if (!s)
		return 1;
	if (d == BPF_CORE_READ(mnt, mnt.mnt_root)) {
		parent = BPF_CORE_READ(mnt, mnt_parent);
		if (!parent || parent == mnt) {
			c->done = 1;
			return 1;
		}
		c->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = parent;
		return 0;
	}
	up = BPF_CORE_READ(d, d_parent);
	if (!up || up == d) { /* root of a detached tree */
		c->done = 1;
		return 1;
	}
	if (c->depth >= UNLINKD_MAX_DIR_DEPTH)
		return 1;
	s->dentries[c->depth & (UNLINKD_MAX_DIR_DEPTH - 1)] = (__u64)d;
	c->depth++;
	c->dentry = up;
	return 0;
}

/* Appends "/" + n bytes at src to s->path, remembering where the component
 * starts so ".." can drop it. Returns 1 when it does not fit. */
static __always_inline int push_component(struct scratch *s, const void *src, __u32 n)
{
	__u32 len = s->path_len;

	if (n > UNLINKD_PATH_MAX || len + 1 + n > UNLINKD_PATH_MAX ||
	    s->n_components >= UNLINKD_MAX_COMPONENTS) {
		s->flags |= UNLINKD_EVENT_PATH_UNRESOLVED;
		return 1;
	}
	s->starts[s->n_components & (UNLINKD_MAX_COMPONENTS - 1)] = len;
	s->n_components++;
	s->path[len & OFF_MASK] = '/';
	/* The compiler knows n <= 4095 already and would drop the mask the
	 * verifier needs to see. */
	barrier_var(n);
	bpf_probe_read_kernel(&s->path[(len + 1) & OFF_MASK], n & OFF_MASK, src);
	s->path_len = len + 1 + n;
	return 0;
}

static long append_dir_component(__u32 i, void *unused)
{
	struct scratch *s = get_scratch();
	struct dentry *d;

	if (!s || i >= s->dir_depth)
		return 1;
	d = (void *)s->dentries[(s->dir_depth - 1 - i) & (UNLINKD_MAX_DIR_DEPTH - 1)];
	return push_component(s, BPF_CORE_READ(d, d_name.name), BPF_CORE_READ(d, d_name.len));
}

struct norm_ctx {
	__u32 given_len;
	__u32 comp_start;
};

/* Called for every byte of the given name and once past its end: at each
 * '/' or the end, the component before it is dropped ("" and "."), pops the
 * last one (".."), or is appended. */
static long normalise_step(__u32 i, struct norm_ctx *c)
{
	struct scratch *s = get_scratch();
	__u32 start, n;

	if (!s)
		return 1;
	if (i < c->given_len && s->data[i & OFF_MASK] != '/')
		return 0;
	start = c->comp_start;
	n = i - start;
	c->comp_start = i + 1;
	if (n == 0 || (n == 1 && s->data[start & OFF_MASK] == '.'))
		return i >= c->given_len;
	if (n == 2 && s->data[start & OFF_MASK] == '.' && s->data[(start + 1) & OFF_MASK] == '.') {
		if (s->n_components > 0) {
			s->n_components--;
			s->path_len = s->starts[s->n_components & (UNLINKD_MAX_COMPONENTS - 1)];
		}
		return i >= c->given_len;
	}
	if (push_component(s, &s->data[start & OFF_MASK], n))
		return 1;
	return i >= c->given_len;
}

/* Reads the name as the caller passed it into s->data[0..]. */
static __always_inline __u32 read_given(struct scratch *s, const void *name, bool user)
{
	long n;

	if (user) {
		n = bpf_probe_read_user_str(s->data, UNLINKD_PATH_MAX + 1, name);
	} else {
		const char *str = BPF_CORE_READ((struct filename *)name, name);

		n = bpf_probe_read_kernel_str(s->data, UNLINKD_PATH_MAX + 1, str);
	}
	if (n <= 0) {
		s->flags |= UNLINKD_EVENT_NAME_TRUNCATED | UNLINKD_EVENT_PATH_UNRESOLVED;
		return 0;
	}
	return (__u32)(n - 1) & OFF_MASK;
}

/* Builds the absolute path of the name at `name` relative to `dfd` into
 * s->path; sets UNLINKD_EVENT_PATH_UNRESOLVED (and path_len 0) on failure. */
static __always_inline __u32 build_path(struct scratch *s, struct task_struct *task, int dfd,
					const void *name, bool user)
{
	struct walk_ctx walk = {};
	struct norm_ctx norm = {};
	struct vfsmount *vfsmnt;
	struct dentry *dentry;
	__u32 given_len;

	s->path_len = 0;
	s->n_components = 0;
	s->dir_depth = 0;
	given_len = read_given(s, name, user);
	if (!given_len)
		goto unresolved;

	if (s->data[0] == '/') {
		vfsmnt = BPF_CORE_READ(task, fs, root.mnt);
		dentry = BPF_CORE_READ(task, fs, root.dentry);
	} else if (dfd == AT_FDCWD) {
		vfsmnt = BPF_CORE_READ(task, fs, pwd.mnt);
		dentry = BPF_CORE_READ(task, fs, pwd.dentry);
	} else {
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		struct file **fds = BPF_CORE_READ(fdt, fd);
		struct file *f = NULL;

		if (dfd < 0 || (__u32)dfd >= BPF_CORE_READ(fdt, max_fds))
			goto unresolved;
		bpf_probe_read_kernel(&f, sizeof(f), &fds[dfd]);
		if (!f)
			goto unresolved;
		vfsmnt = BPF_CORE_READ(f, f_path.mnt);
		dentry = BPF_CORE_READ(f, f_path.dentry);
	}
	if (!vfsmnt || !dentry)
		goto unresolved;

	walk.dentry = dentry;
	walk.mnt = real_mount(vfsmnt);
	bpf_loop(2 * UNLINKD_MAX_DIR_DEPTH, walk_up, &walk, 0);
	if (!walk.done)
		goto unresolved;
	s->dir_depth = walk.depth;
	bpf_loop(UNLINKD_MAX_DIR_DEPTH, append_dir_component, NULL, 0);

	norm.given_len = given_len;
	bpf_loop(given_len + 1, normalise_step, &norm, 0);
	if (s->flags & UNLINKD_EVENT_PATH_UNRESOLVED)
		goto unresolved;
	if (s->path_len == 0) {
		s->path[0] = '/';
		s->path_len = 1;
	}
	return given_len;

unresolved:
	s->flags |= UNLINKD_EVENT_PATH_UNRESOLVED;
	s->path_len = 0;
	return given_len;
}

/* ---- cgroup v2 path of the current task ---- */

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
		.kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn),
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

/* ---- filters ---- */

static __always_inline __u32 rule_lookup(__u32 generation, __u32 field, const void *value, __u32 size)
{
	struct unlinkd_filter_key key = {};
	__u32 *action;

	key.generation = generation;
	key.field = field;
	__builtin_memcpy(key.value, value, size);
	action = bpf_map_lookup_elem(&filter_rules, &key);
	return action ? *action : 0;
}

static __always_inline bool passes(__u32 hits, __u32 field, const struct unlinkd_filter_meta *meta)
{
	if (hits & UNLINKD_FILTER_EXCLUDE)
		return false;
	if ((meta->include_fields & (1u << field)) && !(hits & UNLINKD_FILTER_INCLUDE))
		return false;
	return true;
}

struct hash_ctx {
	__u64 hash;
	__u32 len;
};

static long hash_name_step(__u32 i, struct hash_ctx *c)
{
	struct scratch *s = get_scratch();

	if (!s || i >= c->len)
		return 1;
	c->hash = (c->hash ^ (__u8)s->name[i & (NAME_BUF - 1)]) * UNLINKD_FNV_PRIME;
	return 0;
}

struct unit_ctx {
	__u32 generation;
	__u32 hits;
};

/* A unit rule matches when any cgroup directory of the task has its name:
 * unit=cron.service covers cron.service and everything below it. */
static long unit_rule_step(__u32 i, struct unit_ctx *c)
{
	struct scratch *s = get_scratch();
	struct unlinkd_name_hash h = {};
	struct hash_ctx hc = { .hash = UNLINKD_FNV_OFFSET };
	struct kernfs_node *kn;
	long n;

	if (!s || i >= s->cg_depth)
		return 1;
	kn = (void *)s->cgroups[i & (UNLINKD_MAX_CGROUP_DEPTH - 1)];
	n = bpf_probe_read_kernel_str(s->name, NAME_BUF, BPF_CORE_READ(kn, name));
	if (n <= 1)
		return 0;
	hc.len = n - 1;
	bpf_loop(hc.len, hash_name_step, &hc, 0);
	h.fnv1a = hc.hash;
	h.len = hc.len;
	c->hits |= rule_lookup(c->generation, UNLINKD_FILTER_UNIT, &h, sizeof(h));
	return 0;
}

struct path_rule_ctx {
	__u64 hash;
	__u32 generation;
	__u32 hits;
};

/* Hashes the absolute path byte by byte and looks up every component
 * prefix ("/", "/home", "/home/u", ...): path=/home/u matches /home/u and
 * everything below it, never /home/user. */
static long path_rule_step(__u32 i, struct path_rule_ctx *c)
{
	struct scratch *s = get_scratch();
	struct unlinkd_name_hash h = {};
	bool boundary;

	if (!s || i >= s->path_len)
		return 1;
	c->hash = (c->hash ^ (__u8)s->path[i & OFF_MASK]) * UNLINKD_FNV_PRIME;
	boundary = i == 0 || i + 1 == s->path_len || s->path[(i + 1) & OFF_MASK] == '/';
	if (boundary) {
		h.fnv1a = c->hash;
		h.len = i + 1;
		c->hits |= rule_lookup(c->generation, UNLINKD_FILTER_PATH, &h, sizeof(h));
	}
	return 0;
}

/* ---- entry and exit ---- */

static __always_inline int stream_entry(struct scratch *s, struct task_struct *task,
					 const struct unlinkd_config *cfg, enum unlinkd_mode mode,
					 __u32 ktid, __u64 start_ns, __u32 given_len)
{
	struct unlinkd_totals *t = get_totals();
	struct ids ids = {};
	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 path_len = s->path_len & OFF_MASK, cg_len = 0, size;

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
	s->rec.op = UNLINKD_OP_UNLINK;
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
	bpf_get_current_comm(s->rec.comm, sizeof(s->rec.comm));
	/* The given name is already at data[0]; the path and cgroup follow it. */
	bpf_probe_read_kernel(&s->data[given_len & OFF_MASK], path_len, s->path);
	bpf_probe_read_kernel(&s->data[(given_len + path_len) & 8191], cg_len, s->cg);

	size = sizeof(s->rec) + ((given_len + path_len + cg_len) & 16383);
	if (bpf_ringbuf_output(&events, &s->rec, size, 0)) {
		if (t)
			bump(&t->ringbuf_drops);
		return -1;
	}
	if (t)
		bump(&t->events_streamed);
	return 0;
}

/* Whether the absolute path in s->path passes the path rules of `gen`. */
static __always_inline bool path_passes(struct scratch *s, __u32 gen, const struct unlinkd_filter_meta *meta)
{
	struct path_rule_ctx pc = { .hash = UNLINKD_FNV_OFFSET, .generation = gen };

	bpf_loop(UNLINKD_PATH_MAX, path_rule_step, &pc, 0);
	return passes(pc.hits, UNLINKD_FILTER_PATH, meta);
}

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

/* do_unlinkat starts: decide (filters), claim the call (inflight), and
 * stream the names if user space wants events. `name` is a struct filename *
 * (kernel modes) or the syscall's user pointer (tracepoint mode). */
static __always_inline void on_entry(enum unlinkd_mode mode, int dfd, const void *name, bool user)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 ktid = (__u32)id, zero = 0, gen, used, given_len = 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	struct unlinkd_filter_meta *meta;
	struct unlinkd_config *cfg;
	struct unlinkd_inflight fl = {};
	struct scratch *s = NULL;
	bool wanted, stream, need_name, path_filter, deferred = false;
	__u64 now;
	long err;

	struct unlinkd_inflight *claimed;

	if (!claims_calls)
		return;
	claimed = bpf_map_lookup_elem(&inflight, &ktid);
	if (claimed) {
		struct unlinkd_totals *t;

		if (claimed->attachment != attachment_id)
			return; /* another attached mode saw this call first */
		/* Our own claim of an earlier call of this thread: its exit
		 * never ran. Count it as lost and claim this call. */
		if (bpf_map_delete_elem(&inflight, &ktid))
			return;
		t = get_totals();
		if (t)
			bump(&t->lost_exits);
	}
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || cfg->retiring_attachment == attachment_id)
		return; /* being replaced: the new attachment claims the call */
	gen = cfg->filter_generation; /* once: the daemon may flip it meanwhile */
	meta = bpf_map_lookup_elem(&filter_meta, &gen);
	if (!meta)
		return;
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
		given_len = build_path(s, task, dfd, name, user);
		if (user && (s->flags & UNLINKD_EVENT_NAME_TRUNCATED))
			deferred = true; /* not faulted in yet: the exit reads it */
		else if (path_filter && !path_passes(s, gen, meta))
			return;
		else if (path_filter && wanted)
			stream = stream_token(cfg, now);
	}

	fl.start_ns = now;
	fl.mode = mode;
	fl.attachment = attachment_id;
	fl.streamed = stream && !deferred;
	fl.deferred = deferred;
	fl.unstreamed = wanted && !stream;
	fl.dfd = dfd;
	fl.name_ptr = (__u64)name;
	err = bpf_map_update_elem(&inflight, &ktid, &fl, BPF_NOEXIST);
	if (err) {
		struct unlinkd_totals *t = get_totals();

		if (err != -EEXIST && t)
			bump(&t->inflight_overflows);
		return;
	}
	if (!fl.streamed || !s)
		return;
	if (stream_entry(s, task, cfg, mode, ktid, fl.start_ns, given_len)) {
		struct unlinkd_inflight *mine = bpf_map_lookup_elem(&inflight, &ktid);

		if (mine)
			mine->streamed = 0;
	}
}

static __always_inline void count_process(__u64 id, int result, struct unlinkd_totals *t)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct unlinkd_process_key key = {};
	struct unlinkd_process *p;
	__u64 now = bpf_ktime_get_ns();

	key.tgid = id >> 32;
	key.start_ns = BPF_CORE_READ(task, group_leader, start_time);
	p = bpf_map_lookup_elem(&processes, &key);
	if (!p) {
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
static __always_inline bool late_entry(const struct unlinkd_inflight *fl, __u32 ktid, bool *streamed,
				       bool *unstreamed)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct unlinkd_filter_meta *meta;
	struct unlinkd_config *cfg;
	struct scratch *s = get_scratch();
	__u32 zero = 0, gen, given_len;
	bool path_filter;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !s)
		return true;
	gen = cfg->filter_generation;
	meta = bpf_map_lookup_elem(&filter_meta, &gen);
	if (!meta)
		return true;
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
			*streamed = !stream_entry(s, task, cfg, fl->mode, ktid, fl->start_ns, given_len);
	}
	return true;
}

/* do_unlinkat returns: whoever deletes the inflight entry counts. */
static __always_inline void on_exit(int result)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 ktid = (__u32)id;
	struct unlinkd_inflight *entry = bpf_map_lookup_elem(&inflight, &ktid);
	struct unlinkd_inflight fl;
	struct unlinkd_totals *t;
	bool streamed, unstreamed;

	if (!entry)
		return;
	fl = *entry;
	if (bpf_map_delete_elem(&inflight, &ktid))
		return; /* another attached mode counted it */
	streamed = fl.streamed;
	unstreamed = fl.unstreamed;
	if (fl.deferred && !late_entry(&fl, ktid, &streamed, &unstreamed))
		return;
	t = get_totals();
	if (!t)
		return;
	bump(result == 0 ? &t->deletes : &t->failures);
	if (unstreamed)
		bump(&t->events_unstreamed);
	count_process(id, result, t);
	if (streamed) {
		struct unlinkd_exit_record rec = {
			.kind = UNLINKD_RECORD_EXIT,
			.mode = fl.mode,
			.kernel_tid = ktid,
			.result = result,
		};

		if (bpf_ringbuf_output(&events, &rec, sizeof(rec), 0))
			bump(&t->ringbuf_drops);
	}
}

/* ---- attach points ---- */

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_do_unlinkat, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_FENTRY, dfd, name, false);
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_do_unlinkat, int dfd, struct filename *name, int ret)
{
	on_exit(ret);
	return 0;
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(kprobe_do_unlinkat, int dfd, struct filename *name)
{
	on_entry(UNLINKD_MODE_KPROBE, dfd, name, false);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(kretprobe_do_unlinkat, long ret)
{
	on_exit((int)ret);
	return 0;
}

/* unlinkat(2) reaches do_unlinkat only with flag 0: AT_REMOVEDIR goes to
 * do_rmdir and any other bit is EINVAL before either. */
SEC("tracepoint/syscalls/sys_enter_unlinkat")
int tp_sys_enter_unlinkat(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2] != 0)
		return 0;
	on_entry(UNLINKD_MODE_TRACEPOINT, (int)ctx->args[0], (const void *)ctx->args[1], true);
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
	on_entry(UNLINKD_MODE_TRACEPOINT, AT_FDCWD, (const void *)ctx->args[0], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unlink")
int tp_sys_exit_unlink(struct trace_event_raw_sys_exit *ctx)
{
	on_exit((int)ctx->ret);
	return 0;
}
