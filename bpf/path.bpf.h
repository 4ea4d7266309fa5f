/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Absolute path: resolve the directory, join the name, normalise. build_path
 * turns the name a deletion was given (relative to a dfd or the cwd, with
 * "." and "..") into the absolute path in s->path, walking dentries and
 * mounts up to the root with bpf_loop. Part of unlinkd.bpf.c: included after
 * its maps, it uses AT_FDCWD from there; its callers pass the scratch space.
 */
#ifndef UNLINKD_PATH_BPF_H
#define UNLINKD_PATH_BPF_H

#include "scratch.bpf.h"

static __always_inline struct mount *real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

/* The bpf_loop callbacks get the scratch space through their context: one
 * map look-up per path instead of one per directory or byte. */
struct walk_ctx {
	struct scratch *s;
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *mnt_root; /* mnt's root, read once per mount, not per directory */
	__u32 depth;
	int done;
};

/* One step up from a dentry: to its parent, or across a mount to the
 * mountpoint. Stops at the root of the mount tree. */
static long walk_up(__u32 i, struct walk_ctx *c)
{
	struct scratch *s = c->s;
	/* Locals, not c->...: BPF_CORE_READ relocates its whole argument
	 * expression, and walk_ctx is not a kernel type. */
	struct dentry *d = c->dentry, *up;
	struct mount *mnt = c->mnt, *parent;

	if (d == c->mnt_root) {
		parent = BPF_CORE_READ(mnt, mnt_parent);
		if (!parent || parent == mnt) {
			c->done = 1;
			return 1;
		}
		c->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = parent;
		c->mnt_root = BPF_CORE_READ(parent, mnt.mnt_root);
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

static long append_dir_component(__u32 i, struct scratch **sp)
{
	struct scratch *s = *sp;
	const unsigned char *name;
	struct dentry *d;
	__u64 q[2]; /* the qstr: aligned for the pointer read out of it */
	__u32 len;

	if (i >= s->dir_depth)
		return 1;
	d = (void *)s->dentries[(s->dir_depth - 1 - i) & (UNLINKD_MAX_DIR_DEPTH - 1)];
	/* The name and its length in one read of the dentry's qstr, as the
	 * kernel lays it out (CO-RE offsets; a layout that does not fit these
	 * 16 bytes fails the load, it is never misread). */
	bpf_probe_read_kernel(q, sizeof(q), (const char *)d + bpf_core_field_offset(struct dentry, d_name));
	name = *(const unsigned char **)((char *)q + bpf_core_field_offset(struct qstr, name));
	len = *(__u32 *)((char *)q + bpf_core_field_offset(struct qstr, len));
	return push_component(s, name, len);
}

/* The component of the given name at data[start..start+n): dropped ("" and
 * "."), popping the last one (".."), or appended. 1 when it does not fit. */
static __always_inline int take_component(struct scratch *s, __u32 start, __u32 n)
{
	if (n == 0 || (n == 1 && s->data[start & OFF_MASK] == '.'))
		return 0;
	if (n == 2 && s->data[start & OFF_MASK] == '.' && s->data[(start + 1) & OFF_MASK] == '.') {
		if (s->n_components > 0) {
			s->n_components--;
			s->path_len = s->starts[s->n_components & (UNLINKD_MAX_COMPONENTS - 1)];
		}
		return 0;
	}
	return push_component(s, &s->data[start & OFF_MASK], n);
}

struct norm_ctx {
	struct scratch *s;
	__u32 given_len;
	__u32 comp_start;
};

#define BYTE_ONES 0x0101010101010101ULL  /* 0x01 in every byte of a word */
#define BYTE_HIGHS 0x8080808080808080ULL /* each byte's high bit */
#define SEPS_MASK (UNLINKD_MAX_COMPONENTS - 1)

/* The bytes of a word that are zero, as the high bit of each (exact: no
 * carry crosses a byte, unlike the shorter (x - BYTE_ONES) & ~x form). */
static __always_inline __u64 zero_bytes(__u64 x)
{
	return ~(((x & ~BYTE_HIGHS) + ~BYTE_HIGHS) | x) & BYTE_HIGHS;
}

/* Eight bytes of the given name per call: records where each '/' is, and
 * the end (given_len) as one more separator, in s->seps. A name is scanned
 * a word at a time; the components are then taken one call each
 * (normalise_component), not one call per byte. */
/* The count lives in the scratch map, not in the context on the stack: the
 * verifier tracks a stack value's range from call to call and would not
 * see the loop converge (E2BIG on load). */
static long find_separators(__u32 i, struct norm_ctx *c)
{
	struct scratch *s = c->s;
	__u32 base = i * 8, n = s->n_seps, k;
	__u64 w, seps;

	if (base > c->given_len || n >= UNLINKD_MAX_COMPONENTS)
		return 1; /* done, or more than s->seps holds */
	__builtin_memcpy(&w, &s->data[base & OFF_MASK], sizeof(w)); /* little-endian: byte k is bits 8k.. */
	seps = zero_bytes(w ^ ('/' * BYTE_ONES));
	if (c->given_len < base + 8) {
		__u32 end = (c->given_len - base) & 7;

		seps = (seps & ((1ULL << (8 * end)) - 1)) | (0x80ULL << (8 * end));
	}
	/* Branch-free: every byte's position is written at the next free
	 * slot, which only a separator takes. */
#pragma unroll
	for (k = 0; k < 8; k++) {
		s->seps[n & SEPS_MASK] = base + k;
		n += (seps >> (8 * k + 7)) & 1;
	}
	s->n_seps = n;
	return c->given_len < base + 8;
}

static long normalise_component(__u32 i, struct norm_ctx *c)
{
	struct scratch *s = c->s;
	__u32 end, start = c->comp_start;

	if (i >= s->n_seps)
		return 1;
	end = s->seps[i & SEPS_MASK];
	c->comp_start = end + 1;
	return take_component(s, start, end - start) || end >= c->given_len;
}

/* The fallback for a name with more separators than s->seps holds: a call
 * per byte. */
static long normalise_step(__u32 i, struct norm_ctx *c)
{
	struct scratch *s = c->s;
	__u32 start = c->comp_start;

	if (i < c->given_len && s->data[i & OFF_MASK] != '/')
		return 0;
	c->comp_start = i + 1;
	return take_component(s, start, i - start) || i >= c->given_len;
}

/* Joins the given name (in data[0..given_len)) to the directory in s->path,
 * resolving "", "." and "..". */
static __always_inline void normalise(struct scratch *s, __u32 given_len)
{
	struct norm_ctx c = { .s = s, .given_len = given_len };
	bool fast;

	s->n_seps = 0;
	bpf_loop(given_len / 8 + 1, find_separators, &c, 0);
	fast = s->n_seps < UNLINKD_MAX_COMPONENTS;
	/* Both loops always run (one of them zero times): two call sites the
	 * compiler cannot merge into one with two callbacks, which the
	 * verifier would not inline. */
	bpf_loop(fast ? s->n_seps : 0, normalise_component, &c, 0);
	bpf_loop(fast ? 0 : given_len + 1, normalise_step, &c, 0);
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

/* Appends the path from the root of the mount tree down to `dentry` on
 * `vfsmnt` to s->path (empty for the root itself). False when the walk did
 * not reach the root within UNLINKD_MAX_DIR_DEPTH directories. */
static __always_inline bool walk_from_root(struct scratch *s, struct vfsmount *vfsmnt, struct dentry *dentry)
{
	struct walk_ctx walk = { .s = s };
	struct scratch *sp = s;

	walk.dentry = dentry;
	walk.mnt = real_mount(vfsmnt);
	walk.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	bpf_loop(2 * UNLINKD_MAX_DIR_DEPTH, walk_up, &walk, 0);
	if (!walk.done)
		return false;
	s->dir_depth = walk.depth;
	bpf_loop(UNLINKD_MAX_DIR_DEPTH, append_dir_component, &sp, 0);
	return true;
}

/* The absolute path of the task's executable (task->mm->exe_file) into
 * s->path, with the same walk as the deleted names; 0 when the task has
 * none (a kernel thread) or it cannot be resolved. Clobbers s->path, so it
 * runs once the event's path has been copied out. */
static __always_inline __u32 resolve_exe(struct scratch *s, struct task_struct *task)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct vfsmount *vfsmnt;
	struct dentry *dentry;
	__u32 flags = s->flags; /* the event's: push_component sets them */
	bool ok;

	s->path_len = 0;
	s->n_components = 0;
	s->dir_depth = 0;
	if (!exe)
		return 0;
	vfsmnt = BPF_CORE_READ(exe, f_path.mnt);
	dentry = BPF_CORE_READ(exe, f_path.dentry);
	s->flags = 0;
	ok = vfsmnt && dentry && walk_from_root(s, vfsmnt, dentry) && !(s->flags & UNLINKD_EVENT_PATH_UNRESOLVED);
	s->flags = flags;
	return ok ? s->path_len & OFF_MASK : 0;
}

/* Builds the absolute path of the name at `name` relative to `dfd` into
 * s->path; sets UNLINKD_EVENT_PATH_UNRESOLVED (and path_len 0) on failure. */
static __always_inline __u32 build_path(struct scratch *s, struct task_struct *task, int dfd,
					const void *name, bool user)
{
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

	if (!walk_from_root(s, vfsmnt, dentry))
		goto unresolved;

	normalise(s, given_len);
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

#endif /* UNLINKD_PATH_BPF_H */
