/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-CPU scratch workspace of one do_unlinkat call: the record streamed
 * to user space with its data, and the buffers that path resolution, the
 * cgroup walk and the filters fill. It lives in a map (the `scratch` map in
 * unlinkd.bpf.c) because it is far larger than the 512-byte BPF stack; this
 * header only defines its layout, so the map can be declared with it.
 */
#ifndef UNLINKD_SCRATCH_BPF_H
#define UNLINKD_SCRATCH_BPF_H

#include "unlinkd.h"

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
	char dir[PATH_BUF]; /* a directory's path, written right to left by the walk */
	char cg[CG_BUF];
	char name[NAME_BUF];
	__u16 dir_starts[UNLINKD_MAX_DIR_DEPTH];   /* offset in dir of each component's '/', leaf first */
	__u64 cgroups[UNLINKD_MAX_CGROUP_DEPTH];   /* leaf first */
	__u16 starts[UNLINKD_MAX_COMPONENTS];	   /* offset of each component's '/' */
	__u16 seps[UNLINKD_MAX_COMPONENTS];	   /* where the given name's components end */
	__u32 dir_depth;
	__u32 dir_pos; /* where the walk's path starts in dir */
	__u32 cg_depth;
	__u32 path_len;
	__u32 n_components;
	__u32 n_seps; /* entries of seps in use (see find_separators) */
	__u32 flags;
};

#endif /* UNLINKD_SCRATCH_BPF_H */
