#include "event.h"

#include <cstring>

#include "unit.h"
#include "unlinkd.h"

namespace unlinkd {

static std::string fixed_string(const char* s, std::size_t max)
{
    return std::string(s, strnlen(s, max));
}

std::optional<Event> EventJoiner::on_record(const void* data, std::size_t size, std::int64_t realtime_offset_ns)
{
    if (size < 1) {
        ++malformed_;
        return std::nullopt;
    }
    auto kind = *static_cast<const std::uint8_t*>(data);
    if (kind == UNLINKD_RECORD_ENTRY) {
        unlinkd_entry_record r;
        if (size < sizeof(r)) {
            ++malformed_;
            return std::nullopt;
        }
        std::memcpy(&r, data, sizeof(r));
        std::size_t need = sizeof(r) + r.given_len + r.path_len + r.cgroup_len + r.exe_len;
        if (size < need || r.mode >= UNLINKD_MODE_COUNT) {
            ++malformed_;
            return std::nullopt;
        }
        const char* p = static_cast<const char*>(data) + sizeof(r);
        Event e;
        // Unsigned, so a nonsense timestamp wraps instead of overflowing a
        // signed sum (undefined behaviour; found by tests/fuzz, record/time-overflow).
        e.time_usec = (r.time_ns + static_cast<std::uint64_t>(realtime_offset_ns)) / 1000;
        e.pid = r.pid;
        e.tid = r.tid;
        e.ppid = r.ppid;
        e.uid = r.uid;
        e.gid = r.gid;
        e.loginuid = r.loginuid;
        e.sessionid = r.sessionid;
        e.comm = fixed_string(r.comm, sizeof(r.comm));
        e.path_as_given.assign(p, r.given_len);
        e.path.assign(p + r.given_len, r.path_len);
        e.path_truncated = (r.flags & UNLINKD_EVENT_PATH_UNRESOLVED) != 0;
        if (e.path_truncated)
            e.path.clear();
        e.cgroup_path.assign(p + r.given_len + r.path_len, r.cgroup_len);
        e.exe.assign(p + r.given_len + r.path_len + r.cgroup_len, r.exe_len);
        e.unit = unit_from_cgroup_path(e.cgroup_path);
        e.cgroup_id = r.cgroup_id;
        e.mode = static_cast<Mode>(r.mode);
        e.op = r.op == UNLINKD_OP_RMDIR ? "rmdir" : "unlink";
        if (pending_.size() >= max_pending && !pending_.count(r.kernel_tid))
            pending_.erase(pending_.begin());  // exits lost to a full ring: forget one
        pending_[r.kernel_tid] = std::move(e);
        return std::nullopt;
    }
    if (kind == UNLINKD_RECORD_EXIT) {
        unlinkd_exit_record r;
        if (size < sizeof(r)) {
            ++malformed_;
            return std::nullopt;
        }
        std::memcpy(&r, data, sizeof(r));
        auto it = pending_.find(r.kernel_tid);
        if (it == pending_.end()) {
            ++unmatched_exits_;
            return std::nullopt;
        }
        Event e = std::move(it->second);
        pending_.erase(it);
        e.result = r.result;
        return e;
    }
    ++malformed_;
    return std::nullopt;
}

}  // namespace unlinkd
