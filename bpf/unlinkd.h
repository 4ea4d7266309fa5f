/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The only ABI between the BPF programs (bpf/unlinkd.bpf.c) and user space.
 *
 * Everything that crosses the kernel/user boundary is declared here: map keys
 * and values, ring buffer records, enums and limits. User space static_asserts
 * the layout (tests/unit/test_abi.cpp) so a change here that breaks the other
 * side fails the build, not a run.
 *
 * Types are the kernel's fixed-width __u8.. __u64, which both sides have: BPF
 * through vmlinux_min.h, C++ through <linux/types.h>.
 */
#ifndef UNLINKD_ABI_H
#define UNLINKD_ABI_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define UNLINKD_COMM_LEN 16
/* Longest path the kernel resolves, without the NUL (PATH_MAX is 4096 with it). */
#define UNLINKD_PATH_MAX 4095
/* Longest cgroup path sent with an event; the unit is derived from it. */
#define UNLINKD_CGROUP_PATH_MAX 511
/* Directory components walked from a dentry up to the root (bounded walk). */
#define UNLINKD_MAX_DIR_DEPTH 64
/* Path components kept for "..": deeper paths are marked truncated. */
#define UNLINKD_MAX_COMPONENTS 256
/* cgroup ancestors walked for the event's cgroup path and unit filters. */
#define UNLINKD_MAX_CGROUP_DEPTH 16
/* Deepest pid namespace nesting a daemon in a container is looked for at. */
#define UNLINKD_MAX_PIDNS_LEVEL 8
/* Rules in one filter generation (user space rejects more). */
#define UNLINKD_MAX_FILTER_RULES 1024
/* The layout and meaning of the maps, records and config: kept in
 * unlinkd_config.abi_version, so a daemon adopting the maps a previous run
 * left (object_keeper) adopts them only from a build with the same ABI.
 * 0 is what builds before the field existed left there. Bump it with any
 * change to a map's key or value, a record, or an enum's values. */
#define UNLINKD_ABI_VERSION 5
/* The audit login uid and session id when unset (AUDIT_UID_UNSET). */
#define UNLINKD_ID_UNSET 4294967295u
/* Counters of open claims, by attachment id modulo this (a power of two):
 * a hand-over waits until the retiring attachment's slot has as many
 * claims closed as opened. User space gives attachments that can be live at
 * once different slots. */
#define UNLINKD_CLAIM_SLOTS 16
#define UNLINKD_CLAIM_SLOT(attachment_id) ((attachment_id) & (UNLINKD_CLAIM_SLOTS - 1))

enum unlinkd_mode {
	UNLINKD_MODE_FENTRY = 0,
	UNLINKD_MODE_KPROBE = 1,
	UNLINKD_MODE_TRACEPOINT = 2,
	UNLINKD_MODE_COUNT = 3,
};

enum unlinkd_op {
	UNLINKD_OP_UNLINK = 0, /* do_unlinkat */
	UNLINKD_OP_RMDIR = 1,  /* do_rmdir */
	UNLINKD_OP_COUNT = 2,
};

/* The claim of a call: one per thread, in task-local storage (the thread
 * itself is the key; the kernel frees it with the thread), kept between
 * calls. A thread is inside do_unlinkat or do_rmdir at most once; the first
 * attached mode's entry program to find `attachment` 0 sets it and owns the
 * deletion; the exit program that finds it set clears it and counts,
 * whichever function's exit it is. */
struct unlinkd_claim {
	__u64 start_ns;
	/* Tracepoint mode only: the user-space name could not be read at
	 * syscall entry (its page was not faulted in yet; the kernel faults it
	 * in while copying it), so path filters and the entry record are done
	 * at exit from name_ptr and dfd. */
	__u64 name_ptr;
	/* The thread's process key (unlinkd_process_key), read once: a
	 * thread's tgid never changes, and an exec by another thread hands the
	 * group leader's start time over with the tgid. */
	__u64 leader_start_ns;
	__s32 dfd;
	__u32 attachment; /* id of the attachment whose entry program claimed the call; 0: none */
	__u32 tgid;       /* kernel tgid, with leader_start_ns */
	__u8 mode;        /* enum unlinkd_mode of that attachment */
	__u8 streamed;    /* an entry record went to the ring buffer */
	__u8 deferred;    /* see name_ptr */
	__u8 unstreamed;  /* user space wanted the event, the stream budget refused it */
	__u8 op;          /* enum unlinkd_op: the per-op totals, the deferred entry record */
	__u8 key_known;   /* tgid and leader_start_ns are set */
	__u8 pad[6];
};

/* Per-process aggregate key: a pid is reused, (tgid, start time) is not. */
struct unlinkd_process_key {
	__u32 tgid;     /* kernel (init namespace) tgid */
	__u32 pad;
	__u64 start_ns; /* group leader's start_time, CLOCK_MONOTONIC ns */
};

struct unlinkd_process {
	__u64 deletes;   /* successful deletions */
	__u64 failures;  /* deletion attempts that returned an error */
	__u64 first_ns;  /* CLOCK_MONOTONIC ns at the start of the first counted attempt */
	__u64 last_ns;   /* ... and of the latest (the exit reuses the entry's clock read) */
	__u64 cgroup_id; /* cgroup v2 id at the first counted attempt */
	__u32 pid;       /* tgid as seen from the daemon's pid namespace (0: not visible) */
	__u32 uid;
	char comm[UNLINKD_COMM_LEN];
	__u32 loginuid;  /* audit login uid at the first counted attempt (UNLINKD_ID_UNSET: none) */
	__u32 pad;
};

/* Per-CPU totals: exact whatever the LRU evicts or the ring buffer drops. */
struct unlinkd_totals {
	__u64 new_processes;      /* process entries created; evictions = this - live entries */
	__u64 ringbuf_drops;      /* records that did not fit in the ring buffer */
	__u64 inflight_overflows; /* deletions not tracked: the kernel had no task storage for their claim */
	__u64 events_streamed;    /* entry records written */
	/* Calls whose exit program never ran (the kernel skips the fexit
	 * programs of a replaced trampoline image for calls inside it, e.g.
	 * when another tool attaches to do_unlinkat): found when the same
	 * attachment sees the thread's next call. Counted here, result unknown. */
	__u64 lost_exits;
	/* Deletions counted but not streamed because the stream budget of the
	 * second was used up (unlinkd_config.stream_per_sec): journal and
	 * signals report them as not logged / suppressed. */
	__u64 events_unstreamed;
	/* Deletions and failures by enum unlinkd_op; the totals are their sums
	 * (user space adds them: one add per call on the hot path, not two).
	 * Each counter only ever grows, so a sum read while the programs bump
	 * them never goes down either. */
	__u64 op_deletes[UNLINKD_OP_COUNT];
	__u64 op_failures[UNLINKD_OP_COUNT];
	/* Claims opened and closed (counted, or found lost), by the claiming
	 * attachment's slot (UNLINKD_CLAIM_SLOTS). Both only grow, and once a
	 * retiring attachment opens no more, a sum of closed read while exits
	 * bump it is never above the truth: equal sums mean all closed. */
	__u64 claims_opened[UNLINKD_CLAIM_SLOTS];
	__u64 claims_closed[UNLINKD_CLAIM_SLOTS];
};

/* Filters. Rules live in a hash keyed by (generation, field, value) and the
 * fields in use in unlinkd_config.filter_metas, a slot per generation
 * (generation modulo UNLINKD_FILTER_META_SLOTS, so no hash look-up); the
 * programs read the active generation from unlinkd_config once per call, so
 * switching to a new filter is one write of a 32-bit value, made after the
 * write of its slot. User space deletes an old generation only after the
 * kernel has waited for every running BPF program (an update of the
 * `sync_outer` array of maps makes it synchronize_rcu()), so no program ever
 * looks up a generation that is gone, and generations are consecutive, so a
 * live one's slot is never reused. */
#define UNLINKD_FILTER_GENERATIONS 5 /* live at once, at most */
#define UNLINKD_FILTER_META_SLOTS 8  /* more than live generations; a power of two */
#define UNLINKD_FILTER_META_SLOT(generation) ((generation) & (UNLINKD_FILTER_META_SLOTS - 1))

enum unlinkd_filter_field {
	UNLINKD_FILTER_PID = 1,  /* value: __u32 pid in the daemon's pid namespace */
	UNLINKD_FILTER_UID = 2,  /* value: __u32 uid */
	UNLINKD_FILTER_COMM = 3, /* value: comm, NUL padded */
	UNLINKD_FILTER_UNIT = 4, /* value: unlinkd_name_hash of a cgroup directory name */
	UNLINKD_FILTER_PATH = 5, /* value: unlinkd_name_hash of an absolute path prefix */
	UNLINKD_FILTER_LOGINUID = 6, /* value: __u32 audit login uid */
	UNLINKD_FILTER_OP = 7,       /* value: __u32 enum unlinkd_op */
	UNLINKD_FILTER_FIELD_COUNT = 8,
};

enum unlinkd_filter_action {
	UNLINKD_FILTER_INCLUDE = 1,
	UNLINKD_FILTER_EXCLUDE = 2,
};

/* FNV-1a 64 of a string plus its length: strings longer than a key. */
struct unlinkd_name_hash {
	__u64 fnv1a;
	__u32 len;
	__u32 pad;
};

#define UNLINKD_FNV_OFFSET 0xcbf29ce484222325ULL
#define UNLINKD_FNV_PRIME 0x100000001b3ULL

struct unlinkd_filter_key {
	__u32 generation;
	__u32 field; /* enum unlinkd_filter_field */
	__u8 value[16];
};

struct unlinkd_filter_meta {
	__u32 include_fields; /* bit (1 << field) set: at least one include rule on field */
	__u32 exclude_fields; /* bit (1 << field) set: at least one exclude rule on field */
};

enum unlinkd_config_flags {
	/* Send entry/exit records with paths to the ring buffer. Without it
	 * the programs only count, and never pay for path resolution. */
	UNLINKD_CONFIG_STREAM_EVENTS = 1,
};

struct unlinkd_config {
	__u32 filter_generation;
	__u32 flags; /* enum unlinkd_config_flags */
	/* The daemon's pid namespace: pids are reported as seen from it. */
	__u64 pidns_ino;
	/* 0: the initial namespace, kernel pids are used as they are. 1: a
	 * nested one, found among a pid's namespaces by its inode (at most
	 * UNLINKD_MAX_PIDNS_LEVEL deep): a process cannot learn its own
	 * namespace's depth from inside it. */
	__u32 pidns_nested;
	/* An attachment being replaced: its entry programs stop claiming calls,
	 * so the calls it claimed can finish before it is detached (0: none). */
	__u32 retiring_attachment;
	/* Entry records streamed per second at most (0: no limit). The daemon
	 * sets it to what its consumers can use (journal, signals, recent
	 * events): beyond that, resolving paths and filling the ring buffer
	 * would be wasted, and the counts stay exact regardless. */
	__u32 stream_per_sec;
	__u32 abi_version; /* UNLINKD_ABI_VERSION of the build that made the maps */
	/* The root of the daemon's cgroup namespace (its kernfs id; 0: the real
	 * root). Cgroup paths and units are taken below it, so a daemon in a
	 * container sees its container's units. */
	__u64 cgroupns_root_id;
	struct unlinkd_filter_meta filter_metas[UNLINKD_FILTER_META_SLOTS];
};

/* The stream budget's state: one global slot. */
struct unlinkd_stream_budget {
	__u64 window; /* CLOCK_MONOTONIC second the count belongs to */
	__u64 used;
};

/* Ring buffer records. A deletion streams an entry record (names, read when
 * do_unlinkat or do_rmdir starts, since the kernel frees the name before it returns) and
 * an exit record (the result); user space joins them by tid. */
enum unlinkd_record_kind {
	UNLINKD_RECORD_ENTRY = 1,
	UNLINKD_RECORD_EXIT = 2,
};

enum unlinkd_event_flags {
	UNLINKD_EVENT_PATH_UNRESOLVED = 1, /* absolute path too long or not resolvable: empty */
	UNLINKD_EVENT_NAME_TRUNCATED = 2,  /* the given name could not be read whole */
	UNLINKD_EVENT_CGROUP_TRUNCATED = 4,
};

struct unlinkd_entry_record {
	__u8 kind; /* UNLINKD_RECORD_ENTRY */
	__u8 mode; /* enum unlinkd_mode that saw the deletion */
	__u8 op;   /* enum unlinkd_op */
	__u8 flags; /* enum unlinkd_event_flags */
	__u32 kernel_tid; /* join key with the exit record */
	__u64 time_ns;    /* CLOCK_MONOTONIC ns at entry */
	__u64 cgroup_id;
	__u32 pid, tid, ppid; /* as seen from the daemon's pid namespace */
	__u32 uid, gid;
	__u16 given_len;  /* bytes of data[] holding the name as the caller passed it */
	__u16 path_len;   /* then the absolute path */
	__u16 cgroup_len; /* then the cgroup v2 path, "/system.slice/cron.service" */
	__u16 exe_len;    /* then the absolute path of the task's executable (0: none) */
	char comm[UNLINKD_COMM_LEN];
	__u32 loginuid;   /* audit login uid (UNLINKD_ID_UNSET: none) */
	__u32 sessionid;  /* audit session id (UNLINKD_ID_UNSET: none) */
	__u32 pad;        /* 80 bytes: data[] starts 8-aligned */
	/* followed by given_len + path_len + cgroup_len + exe_len bytes, no NULs */
};

struct unlinkd_exit_record {
	__u8 kind; /* UNLINKD_RECORD_EXIT */
	__u8 mode;
	__u8 pad[2];
	__u32 kernel_tid;
	__s32 result; /* 0 or -errno */
	__u32 pad2;
};

/* Bytes after an entry record's header, at the most. */
#define UNLINKD_RECORD_DATA_MAX (3 * UNLINKD_PATH_MAX + UNLINKD_CGROUP_PATH_MAX)

#endif /* UNLINKD_ABI_H */
