// Deletion events as user space sees them, and the join of the kernel's two
// ring buffer records (entry: names; exit: result) into one event. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "modes.h"

namespace unlinkd {

struct Event {
    std::uint64_t time_usec = 0;  // CLOCK_REALTIME
    std::uint32_t pid = 0, tid = 0, ppid = 0, uid = 0, gid = 0;
    // The audit login uid and session (auditd's auid and ses): who logged
    // in, whatever sudo or su did since. UNLINKD_ID_UNSET when unset.
    std::uint32_t loginuid = 4294967295u, sessionid = 4294967295u;
    std::string comm;
    std::string exe;            // absolute path of the executable; empty if none
    std::string path;           // absolute; empty when unresolved (path_truncated)
    std::string path_as_given;
    bool path_truncated = false;
    std::int32_t result = 0;    // 0 or -errno
    Mode mode = Mode::fentry;
    std::string op = "unlink";
    std::uint64_t cgroup_id = 0;
    std::string cgroup_path;
    std::string unit;           // derived from cgroup_path, empty if none

    // The absolute path, or the path as given when it could not be resolved.
    const std::string& display_path() const { return path.empty() ? path_as_given : path; }
};

// Where the engine delivers events: the console, the journal, the bus.
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void on_event(const Event& event) = 0;
};

// Joins entry and exit records by kernel tid. A thread is inside
// do_unlinkat or do_rmdir at most once, so an exit belongs to the last entry of its tid.
// Records lost to a full ring buffer leave an entry without exit (replaced by
// the thread's next entry) or an exit without entry (dropped); the kernel
// counts those losses, and the counts in the maps stay exact regardless.
class EventJoiner {
public:
    // `realtime_offset_ns` = CLOCK_REALTIME - CLOCK_MONOTONIC, added to the
    // kernel's monotonic timestamps.
    std::optional<Event> on_record(const void* data, std::size_t size, std::int64_t realtime_offset_ns);

    std::uint64_t malformed() const { return malformed_; }
    std::uint64_t unmatched_exits() const { return unmatched_exits_; }
    std::size_t pending() const { return pending_.size(); }

    static constexpr std::size_t max_pending = 65536;

private:
    std::unordered_map<std::uint32_t, Event> pending_;
    std::uint64_t malformed_ = 0;
    std::uint64_t unmatched_exits_ = 0;
};

}  // namespace unlinkd
