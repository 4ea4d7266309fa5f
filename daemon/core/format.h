// How events and summaries are written: the journal MESSAGE line (spec
// section 5), and the JSON objects of `unlinkd --foreground --json`. Names
// (comm, paths, units) are escaped (escape.h): every line is one line of
// valid UTF-8 whatever the names hold. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregate.h"
#include "event.h"

namespace unlinkd {

// "rm[4242] uid=1000 deleted /home/u/a.txt", or for a failure
// "rm[4242] uid=1000 failed to delete /tmp/x: ENOENT"; for op rmdir
// "rmdir[4242] uid=1000 removed directory /tmp/d" and "... failed to remove
// directory /tmp/d: ENOTEMPTY". The login uid follows the uid when it is set
// and differs: "rm[4242] uid=0 auid=1000 deleted /etc/a.conf".
std::string journal_message(const Event& e);

// "ENOENT" for -2; "errno 4095" for a number glibc has no name for; "ok"
// for 0. The daemon and unlinkctl both name results with it.
std::string errno_name(int result);

nlohmann::json event_json(const Event& e);
nlohmann::json totals_json(const Totals& t);
nlohmann::json process_json(const ProcessStats& p);
// systemd's STATUS= line: "tracepoint mode: 12 deletions, 1 failure, 3 processes".
std::string status_text(std::string_view mode, const Totals& t);

nlohmann::json summary_json(const Totals& t, const std::vector<ProcessStats>& processes);

}  // namespace unlinkd
