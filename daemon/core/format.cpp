#include "format.h"

#include <climits>
#include <cstdint>
#include <cstring>

#include "escape.h"
#include "unlinkd.h"

namespace unlinkd {

std::string errno_name(int result)
{
    if (result == 0)
        return "ok";
    // 64 bits: -INT_MIN does not fit an int (found by tests/fuzz,
    // record/crash-result-int-min).
    std::int64_t err = result < 0 ? -std::int64_t{result} : result;
    const char* name = err <= INT_MAX ? strerrorname_np(static_cast<int>(err)) : nullptr;
    return name ? name : "errno " + std::to_string(err);
}

std::string journal_message(const Event& e)
{
    std::string head = escape_name(e.comm) + "[" + std::to_string(e.pid) + "] uid=" + std::to_string(e.uid);
    if (e.loginuid != UNLINKD_ID_UNSET && e.loginuid != e.uid)
        head += " auid=" + std::to_string(e.loginuid);
    bool dir = e.op == "rmdir";
    if (e.result == 0)
        return head + (dir ? " removed directory " : " deleted ") + escape_name(e.display_path());
    return head + (dir ? " failed to remove directory " : " failed to delete ") + escape_name(e.display_path()) +
           ": " + errno_name(e.result);
}

nlohmann::json event_json(const Event& e)
{
    return {
        {"time_usec", e.time_usec},
        {"pid", e.pid},
        {"tid", e.tid},
        {"ppid", e.ppid},
        {"uid", e.uid},
        {"gid", e.gid},
        {"loginuid", e.loginuid},
        {"sessionid", e.sessionid},
        {"comm", escape_name(e.comm)},
        {"exe", escape_name(e.exe)},
        {"path", escape_name(e.path)},
        {"path_as_given", escape_name(e.path_as_given)},
        {"path_truncated", e.path_truncated},
        {"result", e.result},
        {"mode", std::string(mode_name(e.mode))},
        {"unit", escape_name(e.unit)},
        {"op", e.op},
    };
}

nlohmann::json totals_json(const Totals& t)
{
    return {
        {"deletes", t.deletes},
        {"failures", t.failures},
        {"lost_events", t.lost_events},
        {"tracked_processes", t.tracked_processes},
        {"evicted_processes", t.evicted_processes},
        {"inflight_overflows", t.inflight_overflows},
        {"events_streamed", t.events_streamed},
        {"events_unstreamed", t.events_unstreamed},
        {"lost_exits", t.lost_exits},
    };
}

nlohmann::json process_json(const ProcessStats& p)
{
    return {
        {"pid", p.pid},
        {"uid", p.uid},
        {"loginuid", p.loginuid},
        {"comm", escape_name(p.comm)},
        {"deletes", p.deletes},
        {"failures", p.failures},
        {"first_usec", p.first_usec},
        {"last_usec", p.last_usec},
        {"unit", escape_name(p.unit)},
    };
}

nlohmann::json summary_json(const Totals& t, const std::vector<ProcessStats>& processes)
{
    auto list = nlohmann::json::array();
    for (const auto& p : processes)
        list.push_back(process_json(p));
    return {{"totals", totals_json(t)}, {"processes", std::move(list)}};
}

std::string status_text(std::string_view mode, const Totals& t)
{
    auto plural = [](std::uint64_t n, const char* one, const char* many) {
        return std::to_string(n) + " " + (n == 1 ? one : many);
    };
    return std::string(mode) + " mode: " + plural(t.deletes, "deletion", "deletions") + ", " +
           plural(t.failures, "failure", "failures") + ", " +
           plural(t.tracked_processes, "process", "processes");
}

}  // namespace unlinkd
