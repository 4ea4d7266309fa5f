// Filter rules (spec section 3): parsing, with an error that names the bad
// rule, and compilation into the contents of the kernel's filter maps. Pure:
// applying the result to the maps is bpf_engine's job.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "result.h"
#include "unlinkd.h"

namespace unlinkd {

enum class FilterField : std::uint32_t {
    pid = UNLINKD_FILTER_PID,
    uid = UNLINKD_FILTER_UID,
    comm = UNLINKD_FILTER_COMM,
    unit = UNLINKD_FILTER_UNIT,
    path = UNLINKD_FILTER_PATH,
    loginuid = UNLINKD_FILTER_LOGINUID,
    op = UNLINKD_FILTER_OP,
};

struct FilterRule {
    FilterField field;
    bool exclude = false;
    std::string value;  // canonical: numbers without leading zeros, paths normalised
    std::string text() const;  // "FIELD=VALUE" or "FIELD!=VALUE", canonical
    bool operator==(const FilterRule&) const = default;
};

// Parses every rule or none: the first bad one is the error, named in it.
Result<std::vector<FilterRule>> parse_filter_rules(const std::vector<std::string>& rules);

struct FilterEntry {
    std::uint32_t field = 0;
    std::array<std::uint8_t, 16> value{};
    std::uint32_t action = 0;  // unlinkd_filter_action bits
};

struct CompiledFilter {
    unlinkd_filter_meta meta{};
    std::vector<FilterEntry> entries;  // one per distinct (field, value)
};

CompiledFilter compile_filter(const std::vector<FilterRule>& rules);

// The user-space mirror of the kernel's decision, for tests and reasoning:
// includes of one field OR-ed, fields AND-ed, any matching exclude drops.
struct FilterSubject {
    std::uint32_t pid = 0;
    std::uint32_t uid = 0;
    std::string comm;
    std::string cgroup_path;  // every directory name on it is a unit candidate
    std::string path;         // absolute, normalised; empty when unresolved
    std::uint32_t loginuid = UNLINKD_ID_UNSET;
    std::string op = "unlink";  // or "rmdir"
};
bool filter_matches(const std::vector<FilterRule>& rules, const FilterSubject& subject);

}  // namespace unlinkd
