// The journal entries unlinkd writes (spec section 5), as field lists. Pure:
// journal_sink sends them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate.h"
#include "event.h"

namespace unlinkd {

// MESSAGE_IDs, documented in systemd/unlinkd.catalog.
inline constexpr const char* message_id_deletion = "1e7a225fb4ed478abe629f4b6b6823ec";
inline constexpr const char* message_id_summary = "56dd6baa98ba4f23bfa30e9b04725d50";

// "KEY=value" fields of one deletion: MESSAGE, MESSAGE_ID, PRIORITY=6 and
// every UNLINKD_* field.
std::vector<std::string> deletion_fields(const Event& e);

// The entry that says how many deletions were not logged in an interval:
// because more than `per_second` came in a second, or, `journald_busy` of
// them, because journald did not keep up (its socket stayed full longer than
// the sink's backlog lasts).
std::vector<std::string> not_logged_fields(std::uint64_t not_logged, std::uint64_t per_second,
                                           std::uint64_t journald_busy = 0);

// One entry in journald's native protocol (one datagram to
// /run/systemd/journal/socket): "KEY=value\n" per field, or, for a value
// holding a newline, "KEY\n" + its length (64-bit little endian) + value +
// "\n". Fields without '=' are left out.
std::string journal_native_entry(const std::vector<std::string>& fields);

// The periodic summary entry: what changed in the last `interval_sec`
// (`now` minus `before`), the totals, and the busiest processes of `top`.
std::vector<std::string> summary_fields(const Totals& now, const Totals& before, const std::vector<ProcessStats>& top,
                                        std::uint64_t interval_sec, std::string_view mode);

}  // namespace unlinkd
