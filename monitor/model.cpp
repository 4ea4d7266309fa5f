#include "model.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "core/format.h"

namespace monitor {

const char* state_name(DaemonState s)
{
    switch (s) {
    case DaemonState::connecting: return "connecting";
    case DaemonState::running: return "running";
    case DaemonState::not_running: return "not-running";
    }
    return "?";
}

Model::Model(std::size_t max_events, std::size_t top_count)
    : max_events_(std::max<std::size_t>(max_events, 1)), top_count_(std::max<std::size_t>(top_count, 1))
{
}

void Model::replace_processes(std::vector<ProcessRow> rows)
{
    processes_.clear();
    merge_processes(rows);
}

void Model::merge_processes(const std::vector<ProcessRow>& rows)
{
    for (const auto& r : rows)
        processes_[r.pid] = r;
    // A Summary names every process that changed, so on a busy machine
    // (a build forking thousands) the map would grow without end; only the
    // top ones are shown, and the periodic GetTopProcesses brings back any
    // that a trim dropped too early.
    const std::size_t keep = top_count_ * 4 + 256;
    if (processes_.size() > keep * 2) {
        auto rows_now = top_n(keep);
        processes_.clear();
        for (auto& r : rows_now)
            processes_[r.pid] = std::move(r);
    }
}

std::vector<ProcessRow> Model::top_n(std::size_t n) const
{
    std::vector<ProcessRow> v;
    v.reserve(processes_.size());
    for (const auto& [pid, r] : processes_)
        v.push_back(r);
    auto more = [](const ProcessRow& a, const ProcessRow& b) {
        return a.deletes != b.deletes ? a.deletes > b.deletes : a.pid < b.pid;
    };
    if (v.size() > n) {
        std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), more);
        v.resize(n);
    } else {
        std::sort(v.begin(), v.end(), more);
    }
    return v;
}

std::vector<ProcessRow> Model::top() const { return top_n(top_count_); }

void Model::add_event(EventRow e)
{
    ++received_;
    pending_.push_back(std::move(e));
    // More than max_events between two flushes (a storm): the older ones
    // would be pushed out by the newer at once, so they are never kept.
    if (pending_.size() > max_events_)
        pending_.pop_front();
}

Model::Flush Model::flush_events()
{
    Flush f;
    if (pending_.empty())
        return f;
    const std::size_t total = shown_.size() + pending_.size();
    if (total > max_events_) {
        f.removed_oldest = total - max_events_;   // <= shown_.size(): pending_ holds max_events_ at most
        shown_.erase(shown_.begin(), shown_.begin() + static_cast<std::ptrdiff_t>(f.removed_oldest));
    }
    f.added.assign(pending_.begin(), pending_.end());
    shown_.insert(shown_.end(), pending_.begin(), pending_.end());
    pending_.clear();
    return f;
}

std::vector<EventRow> Model::join_recent(const std::vector<EventRow>& recent,
                                         const std::vector<EventRow>& since)
{
    // The longest suffix of recent that is a prefix of since: those events
    // were both in the buffer GetRecentEvents read and signalled after
    // Subscribe() took effect.
    std::size_t overlap = std::min(recent.size(), since.size());
    for (; overlap > 0; --overlap) {
        if (std::equal(recent.end() - static_cast<std::ptrdiff_t>(overlap), recent.end(), since.begin()))
            break;
    }
    std::vector<EventRow> out(recent.begin(), recent.end() - static_cast<std::ptrdiff_t>(overlap));
    out.insert(out.end(), since.begin(), since.end());
    return out;
}

std::string format_time(std::uint64_t usec)
{
    std::time_t secs = static_cast<std::time_t>(usec / 1000000);
    std::tm tm{};
    localtime_r(&secs, &tm);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<unsigned>(usec % 1000000 / 1000));
    return buf;
}

std::string format_result(std::int32_t result) { return unlinkd::errno_name(result); }

std::string format_id(std::uint32_t id) { return id == UNLINKD_ID_UNSET ? "-" : std::to_string(id); }

nlohmann::json Model::dump() const
{
    nlohmann::json procs = nlohmann::json::array(), evs = nlohmann::json::array();
    for (const auto& p : top())
        procs.push_back({{"comm", p.comm}, {"pid", p.pid}, {"uid", p.uid}, {"loginuid", p.loginuid},
                         {"unit", p.unit}, {"deletes", p.deletes}, {"failures", p.failures}});
    for (const auto& e : shown_)
        evs.push_back({{"time_usec", e.time_usec}, {"time", format_time(e.time_usec)}, {"comm", e.comm},
                       {"pid", e.pid}, {"uid", e.uid}, {"path", e.path}, {"result", e.result},
                       {"result_text", format_result(e.result)}, {"op", e.op}});
    return {
        {"state", state_name(state)},
        {"message", message},
        {"header", {{"version", header.version}, {"attach_mode", header.attach_mode},
                    {"requested_attach_mode", header.requested_mode}, {"filters", header.filters},
                    {"total_deletes", header.total_deletes}, {"total_failures", header.total_failures},
                    {"lost_events", header.lost_events}, {"suppressed_signals", header.suppressed_signals}}},
        {"processes", procs},
        {"events", evs},
        {"events_received", received_},
        {"max_events", max_events_},
        {"filter_status", filter_status},
    };
}

}  // namespace monitor
