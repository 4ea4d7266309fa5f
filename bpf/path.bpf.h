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
	__u32 pos;		 /* s->dir[pos..UNLINKD_PATH_MAX) holds the components so far */
	__u32 depth;
	int done;
};

/* One step up from a dentry, in one pass: its name goes in front of the
 * components found so far (the path is written right to left into s->dir),
 * then on to its parent; or across a mount to the mountpoint. Stops at the
 * root of the mount tree. */
static long walk_up(__u32 i, struct walk_ctx *c)
{
	struct scratch *s = c->s;
	/* Locals, not c->...: BPF_CORE_READ relocates its whole argument
	 * expression, and walk_ctx is not a kernel type. */
	struct dentry *d = c->dentry, *up;
	struct mount *mnt = c->mnt, *parent;
	const unsigned char *name;
	__u32 len, pos = c->pos, first = bpf_core_field_offset(struct dentry, d_parent);
	__u32 name_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, name) - first;
	__u32 len_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, len) - first;
	__u64 span[4]; /* d_parent and d_name, aligned for the pointers read out of it */

	if (d == c->mnt_root) {
		__u32 up_at = bpf_core_field_offset(struct mount, mnt_mountpoint) -
			      bpf_core_field_offset(struct mount, mnt_parent);
		__u64 m[2]; /* mnt_parent and mnt_mountpoint, read as one */

		barrier_var(up_at);
		bpf_probe_read_kernel(m, sizeof(m), (const char *)mnt + bpf_core_field_offset(struct mount, mnt_parent));
		parent = (struct mount *)m[0];
		if (!parent || parent == mnt) {
			c->done = 1;
			return 1;
		}
		c->dentry = *(struct dentry **)((char *)m + up_at);
		c->mnt = parent;
		c->mnt_root = BPF_CORE_READ(parent, mnt.mnt_root);
		return 0;
	}
	/* The parent, the name and its length in one read, as the kernel lays
	 * the dentry out (CO-RE offsets; a layout that does not fit these 32
	 * bytes fails the load, it is never misread). */
	bpf_probe_read_kernel(span, sizeof(span), (const char *)d + first);
	/* Offsets into span as plain numbers: the compiler would otherwise
	 * subtract from the stack pointer, which the verifier refuses. */
	barrier_var(name_at);
	barrier_var(len_at);
	up = *(struct dentry **)((char *)span);
	name = *(const unsigned char **)((char *)span + name_at);
	len = *(__u32 *)((char *)span + len_at);
	if (!up || up == d) { /* root of a detached tree */
		c->done = 1;
		return 1;
	}
	if (c->depth >= UNLINKD_MAX_DIR_DEPTH || len + 1 > pos)
		return 1; /* too deep or too long: not done, so unresolved */
	pos -= len;
	/* The compiler knows len < pos <= 4095 already and would drop the
	 * mask the verifier needs to see. */
	barrier_var(len);
	bpf_probe_read_kernel(&s->dir[pos & OFF_MASK], len & OFF_MASK, name);
	pos--;
	s->dir[pos & OFF_MASK] = '/';
	s->dir_starts[c->depth & (UNLINKD_MAX_DIR_DEPTH - 1)] = pos;
	c->depth++;
	c->pos = pos;
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

/* The directory's components as the start of s->path's: component i, from
 * the root, is the walk's (dir_depth - 1 - i)th from the leaf. */
static long rebase_dir_start(__u32 i, struct scratch **sp)
{
	struct scratch *s = *sp;

	if (i >= s->dir_depth)
		return 1;
	s->starts[i & (UNLINKD_MAX_COMPONENTS - 1)] =
		s->dir_starts[(s->dir_depth - 1 - i) & (UNLINKD_MAX_DIR_DEPTH - 1)] - s->dir_pos;
	return 0;
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
	int unclean; /* a component is "", "." or ".." (see check_component) */
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

/* Whether the component ending at seps[i] needs normalising: "" (but the
 * one before an absolute name's leading '/'), "." or "..". Stops at the
 * first such; without one the name is joined as it is, in one copy. */
static long check_component(__u32 i, struct norm_ctx *c)
{
	struct scratch *s = c->s;
	__u32 end, start = c->comp_start, n;

	if (i >= s->n_seps)
		return 1;
	end = s->seps[i & SEPS_MASK];
	c->comp_start = end + 1;
	n = end - start;
	if ((n == 0 && i > 0) || (n == 1 && s->data[start & OFF_MASK] == '.') ||
	    (n == 2 && s->data[start & OFF_MASK] == '.' && s->data[(start + 1) & OFF_MASK] == '.')) {
		c->unclean = 1;
		return 1;
	}
	return end >= c->given_len;
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
	bool fast, clean, absolute = s->data[0] == '/';
	__u32 joined_len, n_given;

	s->n_seps = 0;
	bpf_loop(given_len / 8 + 1, find_separators, &c, 0);
	fast = s->n_seps < UNLINKD_MAX_COMPONENTS;
	/* Every loop always runs (some zero times): call sites the compiler
	 * cannot merge into one with several callbacks, which the verifier
	 * would not inline. */
	bpf_loop(fast ? s->n_seps : 0, check_component, &c, 0);
	/* The usual name has no "", "." or "..": the directory, a '/' unless
	 * the name starts with one, and the name as given, one copy instead of
	 * one per component. Anything the component-wise join would refuse
	 * (too long, too many components) takes that join, to be refused
	 * there. */
	joined_len = s->path_len + !absolute + given_len;
	n_given = s->n_seps - absolute; /* an absolute name's first component is the empty one before its '/' */
	clean = fast && !c.unclean && joined_len <= UNLINKD_PATH_MAX &&
		s->n_components + n_given <= UNLINKD_MAX_COMPONENTS;
	if (clean) {
		s->path[s->path_len & OFF_MASK] = '/';
		bpf_probe_read_kernel(&s->path[(s->path_len + !absolute) & OFF_MASK], given_len & OFF_MASK, s->data);
		s->path_len = joined_len;
		s->n_components += n_given;
	}
	c.comp_start = 0;
	bpf_loop(fast && !clean ? s->n_seps : 0, normalise_component, &c, 0);
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

/* Writes the path from the root of the mount tree down to `dentry` on
 * `vfsmnt` into s->dir[s->dir_pos..UNLINKD_PATH_MAX) (empty for the root
 * itself), with its dir_depth components' starts in s->dir_starts, leaf
 * first. False when the walk did not reach the root within
 * UNLINKD_MAX_DIR_DEPTH directories or UNLINKD_PATH_MAX bytes. */
static __always_inline bool walk_from_root(struct scratch *s, struct vfsmount *vfsmnt, struct dentry *dentry)
{
	struct walk_ctx walk = { .s = s, .pos = UNLINKD_PATH_MAX };

	walk.dentry = dentry;
	walk.mnt = real_mount(vfsmnt);
	walk.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	bpf_loop(2 * UNLINKD_MAX_DIR_DEPTH, walk_up, &walk, 0);
	s->dir_pos = walk.pos;
	s->dir_depth = walk.depth;
	return walk.done;
}

/* The absolute path of the task's executable (task->mm->exe_file) into
 * s->dir[s->dir_pos..], with the same walk as the deleted names' directory;
 * its length, 0 when the task has none (a kernel thread) or it cannot be
 * resolved. Leaves s->path alone. */
static __always_inline __u32 resolve_exe(struct scratch *s, struct task_struct *task)
{
	struct file *exe = task->mm->exe_file;
	struct path p = {};

	if (!exe)
		return 0;
	bpf_core_read(&p, sizeof(p), &exe->f_path);
	if (!p.mnt || !p.dentry || !walk_from_root(s, p.mnt, p.dentry))
		return 0;
	return (UNLINKD_PATH_MAX - s->dir_pos) & OFF_MASK;
}

/* Builds the absolute path of the name at `name` relative to `dfd` into
 * s->path; sets UNLINKD_EVENT_PATH_UNRESOLVED (and path_len 0) on failure. */
static __always_inline __u32 build_path(struct scratch *s, struct task_struct *task, int dfd,
					const void *name, bool user)
{
	struct path p = {};
	struct scratch *sp = s;
	__u32 given_len;

	s->path_len = 0;
	s->n_components = 0;
	given_len = read_given(s, name, user);
	if (!given_len)
		goto unresolved;

	/* Each struct path (mnt and dentry) in one read. */
	if (s->data[0] == '/' || dfd == AT_FDCWD) {
		struct fs_struct *fs = task->fs;

		if (s->data[0] == '/')
			bpf_core_read(&p, sizeof(p), &fs->root);
		else
			bpf_core_read(&p, sizeof(p), &fs->pwd);
	} else {
		struct fdtable *fdt = task->files->fdt;
		struct file **fds = BPF_CORE_READ(fdt, fd);
		struct file *f = NULL;

		if (dfd < 0 || (__u32)dfd >= BPF_CORE_READ(fdt, max_fds))
			goto unresolved;
		bpf_probe_read_kernel(&f, sizeof(f), &fds[dfd]);
		if (!f)
			goto unresolved;
		bpf_core_read(&p, sizeof(p), &f->f_path);
	}
	if (!p.mnt || !p.dentry)
		goto unresolved;

	if (!walk_from_root(s, p.mnt, p.dentry))
		goto unresolved;
	/* The directory to the front of s->path, where the name joins it. */
	s->path_len = (UNLINKD_PATH_MAX - s->dir_pos) & OFF_MASK;
	bpf_probe_read_kernel(s->path, s->path_len, &s->dir[s->dir_pos & OFF_MASK]);
	bpf_loop(UNLINKD_MAX_DIR_DEPTH, rebase_dir_start, &sp, 0);
	s->n_components = s->dir_depth;

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
