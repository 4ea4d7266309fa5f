/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hand-written kernel types for CO-RE, instead of a vmlinux.h dumped from the
 * build host's BTF: the build needs no BTF, and every field the programs touch
 * is listed here. preserve_access_index makes libbpf relocate each access by
 * field name against the running kernel's BTF, so only names matter, not the
 * order or the other fields. Renamed fields live in compat.h.
 *
 * Types and constants of the BPF uapi (map types, flags) come from the
 * kernel's uapi headers.
 */
#ifndef UNLINKD_VMLINUX_MIN_H
#define UNLINKD_VMLINUX_MIN_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef _Bool bool;
#define true 1
#define false 0

/* Called with the calling task's registers: the x86-64 uapi layout, which is
 * the kernel's (bpf_tracing.h reads it without CO-RE, by these names). */
struct pt_regs {
	unsigned long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
	unsigned long rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss;
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct qstr {
	unsigned int len;
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct fs_struct {
	struct path root;
	struct path pwd;
};

struct file {
	struct path f_path;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct filename {
	const char *name;
};

struct ns_common {
	unsigned int inum;
};

struct pid_namespace {
	struct ns_common ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
};

struct kernfs_node {
	const char *name;
	__u64 id; /* a cgroup's id (5.5 and later) */
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

typedef struct {
	unsigned int val;
} kuid_t;

struct mm_struct {
	struct file *exe_file;
};

/* loginuid and sessionid (CONFIG_AUDIT) are read through compat.h. */
struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	__u64 start_time;
	struct fs_struct *fs;
	struct files_struct *files;
	struct css_set *cgroups;
	struct pid *thread_pid;
	struct mm_struct *mm;
};

struct trace_event_raw_sys_enter {
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	long id;
	long ret;
};

#pragma clang attribute pop

#endif /* UNLINKD_VMLINUX_MIN_H */
