// Totals and per-process aggregates as read from the kernel's maps, in the
// shape the publishers want. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unlinkd.h"

namespace unlinkd {

struct Totals {
    std::uint64_t deletes = 0;  // both ops
    std::uint64_t failures = 0;
    std::uint64_t unlink_deletes = 0;  // deletes by op
    std::uint64_t rmdir_deletes = 0;
    std::uint64_t unlink_failures = 0;  // failures by op
    std::uint64_t rmdir_failures = 0;
    std::uint64_t new_processes = 0;
    std::uint64_t lost_events = 0;        // ring buffer drops
    std::uint64_t inflight_overflows = 0;
    std::uint64_t events_streamed = 0;
    std::uint64_t lost_exits = 0;         // calls counted whose result is unknown
    std::uint64_t events_unstreamed = 0;  // counted, not streamed (stream budget)
    std::uint64_t tracked_processes = 0;  // live entries of the process map
    std::uint64_t evicted_processes = 0;  // new_processes - tracked (LRU evictions)
};

// Sums the per-CPU slots and derives the evictions from the live entries.
Totals sum_totals(const std::vector<unlinkd_totals>& per_cpu, std::uint64_t tracked_processes);

struct ProcessStats {
    std::uint32_t pid = 0;  // in the daemon's pid namespace
    std::uint32_t uid = 0;
    std::uint32_t loginuid = 4294967295u;  // at the first counted attempt; UNLINKD_ID_UNSET: none
    std::string comm;
    std::uint64_t deletes = 0;
    std::uint64_t failures = 0;
    std::uint64_t first_usec = 0;  // CLOCK_REALTIME
    std::uint64_t last_usec = 0;
    std::uint64_t cgroup_id = 0;
    std::string unit;
    std::uint32_t kernel_tgid = 0;
    std::uint64_t start_ns = 0;
};

ProcessStats to_process_stats(const unlinkd_process_key& key, const unlinkd_process& value,
                              std::int64_t realtime_offset_ns);

// Most deletes first; ties by failures, then latest activity, then pid.
std::vector<ProcessStats> top_processes(std::vector<ProcessStats> all, std::size_t count);

// Deletes and failures summed by systemd unit ("" for processes in none),
// ordered by unit name. From the per-process table: the counts of evicted
// processes are no longer in it, so they fall out of their unit's sums.
struct UnitStats {
    std::string unit;
    std::uint64_t deletes = 0;
    std::uint64_t failures = 0;
};
std::vector<UnitStats> unit_stats(const std::vector<ProcessStats>& processes);

}  // namespace unlinkd
