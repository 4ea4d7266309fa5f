/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The filters' building blocks: a rule lookup in the generation user space
 * published, the include/exclude verdict of a field, and the rules that need
 * a loop: unit (every cgroup directory name, from s->cgroups) and path
 * (every component prefix of s->path). on_entry in unlinkd.bpf.c applies
 * them in order, before the call is claimed or counted. Part of
 * unlinkd.bpf.c: included after its maps, it uses the `filter_rules` and
 * `scratch` maps from there.
 */
#ifndef UNLINKD_FILTER_BPF_H
#define UNLINKD_FILTER_BPF_H

#include "scratch.bpf.h"

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

/* Whether the absolute path in s->path passes the path rules of `gen`. */
static __always_inline bool path_passes(struct scratch *s, __u32 gen, const struct unlinkd_filter_meta *meta)
{
	struct path_rule_ctx pc = { .hash = UNLINKD_FNV_OFFSET, .generation = gen };

	bpf_loop(UNLINKD_PATH_MAX, path_rule_step, &pc, 0);
	return passes(pc.hits, UNLINKD_FILTER_PATH, meta);
}

#endif /* UNLINKD_FILTER_BPF_H */
