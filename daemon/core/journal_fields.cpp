#include "journal_fields.h"

#include "escape.h"
#include "format.h"

namespace unlinkd {

std::vector<std::string> deletion_fields(const Event& e)
{
    return {
        "MESSAGE=" + journal_message(e),
        std::string("MESSAGE_ID=") + message_id_deletion,
        "PRIORITY=6",
        "UNLINKD_PID=" + std::to_string(e.pid),
        "UNLINKD_TID=" + std::to_string(e.tid),
        "UNLINKD_PPID=" + std::to_string(e.ppid),
        "UNLINKD_UID=" + std::to_string(e.uid),
        "UNLINKD_GID=" + std::to_string(e.gid),
        "UNLINKD_COMM=" + e.comm,
        "UNLINKD_LOGINUID=" + std::to_string(e.loginuid),
        "UNLINKD_SESSIONID=" + std::to_string(e.sessionid),
        "UNLINKD_EXE=" + e.exe,
        "UNLINKD_PATH=" + e.path,
        "UNLINKD_PATH_AS_GIVEN=" + e.path_as_given,
        "UNLINKD_RESULT=" + std::to_string(e.result),
        "UNLINKD_OP=" + e.op,
        "UNLINKD_MODE=" + std::string(mode_name(e.mode)),
        "UNLINKD_UNIT=" + e.unit,
    };
}

std::vector<std::string> not_logged_fields(std::uint64_t not_logged, std::uint64_t per_second,
                                           std::uint64_t journald_busy)
{
    std::string why = "more than " + std::to_string(per_second) + " a second";
    if (journald_busy)
        why += "; " + std::to_string(journald_busy) + " of them because journald did not keep up";
    return {
        "MESSAGE=" + std::to_string(not_logged) + " deletions not logged (" + why + "); the counts stay exact",
        std::string("MESSAGE_ID=") + message_id_summary,
        "PRIORITY=5",
        "UNLINKD_NOT_LOGGED=" + std::to_string(not_logged),
    };
}

std::vector<std::string> summary_fields(const Totals& now, const Totals& before, const std::vector<ProcessStats>& top,
                                        std::uint64_t interval_sec, std::string_view mode)
{
    std::uint64_t deletes = now.deletes - before.deletes;
    std::uint64_t failures = now.failures - before.failures;
    std::string busiest;
    for (const auto& p : top)
        busiest += (busiest.empty() ? "; busiest: " : ", ") + escape_name(p.comm) + "[" + std::to_string(p.pid) + "] " +
                   std::to_string(p.deletes);
    return {
        "MESSAGE=" + std::to_string(deletes) + " deletions and " + std::to_string(failures) +
            " failed attempts in the last " + std::to_string(interval_sec) + " s (" + std::to_string(now.deletes) +
            " and " + std::to_string(now.failures) + " in all)" + busiest,
        std::string("MESSAGE_ID=") + message_id_summary,
        "PRIORITY=6",
        "UNLINKD_DELETES=" + std::to_string(deletes),
        "UNLINKD_FAILURES=" + std::to_string(failures),
        "UNLINKD_TOTAL_DELETES=" + std::to_string(now.deletes),
        "UNLINKD_TOTAL_FAILURES=" + std::to_string(now.failures),
        "UNLINKD_LOST_EVENTS=" + std::to_string(now.lost_events),
        "UNLINKD_MODE=" + std::string(mode),
        "UNLINKD_INTERVAL_SEC=" + std::to_string(interval_sec),
    };
}

std::string journal_native_entry(const std::vector<std::string>& fields)
{
    std::string out;
    for (const auto& f : fields) {
        auto eq = f.find('=');
        if (eq == std::string::npos)
            continue;
        if (f.find('\n', eq + 1) == std::string::npos) {
            out += f;
            out += '\n';
            continue;
        }
        std::uint64_t len = f.size() - eq - 1;
        out.append(f, 0, eq);
        out += '\n';
        for (int i = 0; i < 8; ++i)
            out += static_cast<char>((len >> (8 * i)) & 0xff);
        out.append(f, eq + 1, std::string::npos);
        out += '\n';
    }
    return out;
}

}  // namespace unlinkd
