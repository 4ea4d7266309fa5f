// What unlinkd-monitor shows, without GTK or D-Bus: the daemon's state,
// the header (attach mode, totals), the top processes and the last N live
// deletions. The window renders it; --dump-state writes it as JSON, so the
// test reads exactly the rows the window shows.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "unlinkd.h"  // UNLINKD_ID_UNSET: the API's "not set" login uid

namespace monitor {

// One record of GetTopProcesses / Summary: a(uuusttts).
struct ProcessRow {
    std::uint32_t pid = 0, uid = 0, loginuid = UNLINKD_ID_UNSET;
    std::string comm;
    std::uint64_t deletes = 0, failures = 0, last_usec = 0;
    std::string unit;
    bool operator==(const ProcessRow&) const = default;
};

// One record of Deleted / GetRecentEvents: (tuuusssiss).
struct EventRow {
    std::uint64_t time_usec = 0;
    std::uint32_t pid = 0, uid = 0, loginuid = UNLINKD_ID_UNSET;
    std::string comm, exe, path;
    std::int32_t result = 0;
    std::string unit, op;
    bool operator==(const EventRow&) const = default;
};

struct Header {
    std::string version, attach_mode, requested_mode;
    std::vector<std::string> filters;
    std::uint64_t total_deletes = 0, total_failures = 0, lost_events = 0, suppressed_signals = 0;
};

enum class DaemonState { connecting, running, not_running };
const char* state_name(DaemonState s);

class Model {
public:
    Model(std::size_t max_events, std::size_t top_count);

    DaemonState state = DaemonState::connecting;
    std::string message;        // why not running, a Subscribe error, ...
    Header header;
    std::string filter_status;  // the last Apply's outcome: "" / "applied" / the daemon's error

    // Processes. GetTopProcesses replaces them all; a Summary carries the
    // processes that changed since the last one and is merged by pid.
    void replace_processes(std::vector<ProcessRow> rows);
    void merge_processes(const std::vector<ProcessRow>& rows);
    void clear_processes() { processes_.clear(); }
    // Most deletes first (then pid), at most top_count.
    std::vector<ProcessRow> top() const;

    // Events. add_event() only queues; flush_events() moves the queue to
    // the shown rows, keeping the last max_events, and says what changed so
    // that the view updates in two list operations however many arrived.
    void add_event(EventRow e);
    struct Flush {
        std::size_t removed_oldest = 0;     // dropped from the old end of the shown rows
        std::vector<EventRow> added;        // appended at the new end, oldest first
    };
    Flush flush_events();
    const std::deque<EventRow>& events() const { return shown_; }
    std::uint64_t events_received() const { return received_; }

    // The initial load: GetRecentEvents' answer (newest last) and the
    // signals that came in since Subscribe() was sent, which may repeat its
    // newest events: the overlap is kept once.
    static std::vector<EventRow> join_recent(const std::vector<EventRow>& recent,
                                             const std::vector<EventRow>& since_subscribe);

    std::size_t max_events() const { return max_events_; }
    nlohmann::json dump() const;

private:
    std::vector<ProcessRow> top_n(std::size_t n) const;
    std::size_t max_events_, top_count_;
    std::map<std::uint32_t, ProcessRow> processes_;
    std::deque<EventRow> pending_, shown_;   // oldest first
    std::uint64_t received_ = 0;
};

// Display helpers, shared by the window and the dump.
std::string format_time(std::uint64_t usec);       // local HH:MM:SS.mmm
std::string format_result(std::int32_t result);    // "ok" or "ENOENT (No such file or directory)"
std::string format_id(std::uint32_t id);           // "-" for 4294967295

}  // namespace monitor
