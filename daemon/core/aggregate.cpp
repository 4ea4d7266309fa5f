#include "aggregate.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace unlinkd {

Totals sum_totals(const std::vector<unlinkd_totals>& per_cpu, std::uint64_t tracked_processes)
{
    Totals t;
    for (const auto& c : per_cpu) {
        t.unlink_deletes += c.op_deletes[UNLINKD_OP_UNLINK];
        t.rmdir_deletes += c.op_deletes[UNLINKD_OP_RMDIR];
        t.unlink_failures += c.op_failures[UNLINKD_OP_UNLINK];
        t.rmdir_failures += c.op_failures[UNLINKD_OP_RMDIR];
        t.new_processes += c.new_processes;
        t.lost_events += c.ringbuf_drops;
        t.inflight_overflows += c.inflight_overflows;
        t.events_streamed += c.events_streamed;
        t.lost_exits += c.lost_exits;
        t.events_unstreamed += c.events_unstreamed;
    }
    t.deletes = t.unlink_deletes + t.rmdir_deletes;
    t.failures = t.unlink_failures + t.rmdir_failures;
    t.tracked_processes = tracked_processes;
    t.evicted_processes = t.new_processes > tracked_processes ? t.new_processes - tracked_processes : 0;
    return t;
}

static std::uint64_t to_realtime_usec(std::uint64_t mono_ns, std::int64_t offset_ns)
{
    return mono_ns ? static_cast<std::uint64_t>(static_cast<std::int64_t>(mono_ns) + offset_ns) / 1000 : 0;
}

ProcessStats to_process_stats(const unlinkd_process_key& key, const unlinkd_process& v,
                              std::int64_t realtime_offset_ns)
{
    ProcessStats p;
    p.pid = v.pid;
    p.uid = v.uid;
    p.loginuid = v.loginuid;
    p.comm.assign(v.comm, strnlen(v.comm, sizeof(v.comm)));
    p.deletes = v.deletes;
    p.failures = v.failures;
    p.first_usec = to_realtime_usec(v.first_ns, realtime_offset_ns);
    p.last_usec = to_realtime_usec(v.last_ns, realtime_offset_ns);
    p.cgroup_id = v.cgroup_id;
    p.kernel_tgid = key.tgid;
    p.start_ns = key.start_ns;
    return p;
}

std::vector<ProcessStats> top_processes(std::vector<ProcessStats> all, std::size_t count)
{
    auto better = [](const ProcessStats& a, const ProcessStats& b) {
        if (a.deletes != b.deletes)
            return a.deletes > b.deletes;
        if (a.failures != b.failures)
            return a.failures > b.failures;
        if (a.last_usec != b.last_usec)
            return a.last_usec > b.last_usec;
        return a.pid < b.pid;
    };
    count = std::min(count, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), all.end(), better);
    all.resize(count);
    return all;
}

std::vector<UnitStats> unit_stats(const std::vector<ProcessStats>& processes)
{
    std::map<std::string, UnitStats> by_unit;
    for (const auto& p : processes) {
        auto& u = by_unit[p.unit];
        u.deletes += p.deletes;
        u.failures += p.failures;
    }
    std::vector<UnitStats> out;
    out.reserve(by_unit.size());
    for (auto& [name, u] : by_unit) {
        u.unit = name;
        out.push_back(std::move(u));
    }
    return out;
}

}  // namespace unlinkd
