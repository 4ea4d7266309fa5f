#include "filter.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <string_view>

#include "escape.h"
#include "path_util.h"
#include "unit.h"

namespace unlinkd {

static std::string_view field_name(FilterField f)
{
    switch (f) {
    case FilterField::pid: return "pid";
    case FilterField::uid: return "uid";
    case FilterField::comm: return "comm";
    case FilterField::unit: return "unit";
    case FilterField::path: return "path";
    case FilterField::loginuid: return "loginuid";
    case FilterField::op: return "op";
    }
    return "?";
}

std::string FilterRule::text() const
{
    return std::string(field_name(field)) + (exclude ? "!=" : "=") + value;
}

static Error bad_rule(std::string_view rule, std::string_view why)
{
    return Error{EINVAL, "invalid filter rule \"" + shown_input(rule) + "\": " + std::string(why)};
}

static Result<FilterRule> parse_rule(std::string_view rule)
{
    auto eq = rule.find('=');
    if (eq == std::string_view::npos || eq == 0)
        return bad_rule(rule, "expected FIELD=VALUE or FIELD!=VALUE with FIELD one of pid, uid, loginuid, op, comm, "
                              "path, unit");
    bool exclude = rule[eq - 1] == '!';
    std::string_view name = rule.substr(0, exclude ? eq - 1 : eq);
    std::string_view value = rule.substr(eq + 1);

    FilterRule r{FilterField::pid, exclude, {}};
    if (name == "pid" || name == "uid" || name == "loginuid") {
        r.field = name == "pid" ? FilterField::pid : name == "uid" ? FilterField::uid : FilterField::loginuid;
        std::uint32_t n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || ec != std::errc() || end != value.data() + value.size())
            return bad_rule(rule, std::string(name) + " must be a decimal number from 0 to 4294967295");
        if (r.field == FilterField::pid && n == 0)
            return bad_rule(rule, "pid must be greater than 0");
        r.value = std::to_string(n);
    } else if (name == "op") {
        r.field = FilterField::op;
        if (value != "unlink" && value != "rmdir")
            return bad_rule(rule, "op must be unlink (files) or rmdir (directories)");
        r.value = value;
    } else if (name == "comm") {
        r.field = FilterField::comm;
        if (value.empty() || value.size() > UNLINKD_COMM_LEN - 1)
            return bad_rule(rule, "comm must be 1 to 15 bytes (the kernel's task name length)");
        if (value.find('\0') != std::string_view::npos)
            return bad_rule(rule, "comm must not contain a NUL byte");
        r.value = value;
    } else if (name == "path") {
        r.field = FilterField::path;
        if (value.empty() || value.front() != '/')
            return bad_rule(rule, "path must be absolute (start with /)");
        if (value.find('\0') != std::string_view::npos)
            return bad_rule(rule, "path must not contain a NUL byte");
        auto norm = join_normalised("/", value);
        if (!norm || norm->size() > UNLINKD_PATH_MAX)
            return bad_rule(rule, "path is longer than 4095 bytes");
        r.value = *norm;
    } else if (name == "unit") {
        r.field = FilterField::unit;
        if (!is_cgroup_unit_name(value))
            return bad_rule(rule, "unit must be a systemd unit name with a cgroup, ending in .service, "
                                  ".scope, .slice, .socket, .mount or .swap (for example cron.service)");
        r.value = value;
    } else {
        return bad_rule(rule, "unknown field \"" + shown_input(name, 64) +
                                  "\"; fields are pid, uid, loginuid, op, comm, path, unit");
    }
    return r;
}

Result<std::vector<FilterRule>> parse_filter_rules(const std::vector<std::string>& rules)
{
    if (rules.size() > UNLINKD_MAX_FILTER_RULES)
        return Error{EINVAL, "too many filter rules: " + std::to_string(rules.size()) + " (at most " +
                                 std::to_string(UNLINKD_MAX_FILTER_RULES) + ")"};
    std::vector<FilterRule> out;
    out.reserve(rules.size());
    for (const auto& text : rules) {
        auto r = parse_rule(text);
        if (!r)
            return r.error();
        if (std::find(out.begin(), out.end(), *r) == out.end())
            out.push_back(*r);
    }
    return out;
}

static std::array<std::uint8_t, 16> hash_value(std::string_view s)
{
    unlinkd_name_hash h{};
    h.fnv1a = fnv1a64(s);
    h.len = static_cast<std::uint32_t>(s.size());
    std::array<std::uint8_t, 16> v{};
    static_assert(sizeof(h) == v.size());
    std::memcpy(v.data(), &h, sizeof(h));
    return v;
}

static std::array<std::uint8_t, 16> value_bytes(const FilterRule& r)
{
    std::array<std::uint8_t, 16> v{};
    switch (r.field) {
    case FilterField::op: {
        std::uint32_t n = r.value == "rmdir" ? UNLINKD_OP_RMDIR : UNLINKD_OP_UNLINK;
        std::memcpy(v.data(), &n, sizeof(n));
        return v;
    }
    case FilterField::pid:
    case FilterField::uid:
    case FilterField::loginuid: {
        std::uint32_t n = static_cast<std::uint32_t>(std::stoul(r.value));
        std::memcpy(v.data(), &n, sizeof(n));
        return v;
    }
    case FilterField::comm:
        std::memcpy(v.data(), r.value.data(), r.value.size());
        return v;
    case FilterField::unit:
    case FilterField::path:
        return hash_value(r.value);
    }
    return v;
}

CompiledFilter compile_filter(const std::vector<FilterRule>& rules)
{
    CompiledFilter out;
    std::map<std::pair<std::uint32_t, std::array<std::uint8_t, 16>>, std::uint32_t> actions;
    for (const auto& r : rules) {
        auto field = static_cast<std::uint32_t>(r.field);
        auto action = r.exclude ? UNLINKD_FILTER_EXCLUDE : UNLINKD_FILTER_INCLUDE;
        actions[{field, value_bytes(r)}] |= action;
        (r.exclude ? out.meta.exclude_fields : out.meta.include_fields) |= 1u << field;
    }
    for (const auto& [key, action] : actions)
        out.entries.push_back(FilterEntry{key.first, key.second, action});
    return out;
}

static bool rule_hits(const FilterRule& r, const FilterSubject& s)
{
    switch (r.field) {
    case FilterField::pid: return r.value == std::to_string(s.pid);
    case FilterField::uid: return r.value == std::to_string(s.uid);
    case FilterField::loginuid: return r.value == std::to_string(s.loginuid);
    case FilterField::op: return r.value == s.op;
    case FilterField::comm: return r.value == s.comm;
    case FilterField::path: return !s.path.empty() && path_is_under(s.path, r.value);
    case FilterField::unit: {
        std::string_view p = s.cgroup_path;
        size_t i = 0;
        while (i < p.size()) {
            size_t j = p.find('/', i);
            if (j == std::string_view::npos)
                j = p.size();
            if (p.substr(i, j - i) == r.value)
                return true;
            i = j + 1;
        }
        return false;
    }
    }
    return false;
}

bool filter_matches(const std::vector<FilterRule>& rules, const FilterSubject& subject)
{
    std::uint32_t included_fields = 0, hit_fields = 0;
    for (const auto& r : rules) {
        bool hit = rule_hits(r, subject);
        if (r.exclude && hit)
            return false;
        if (!r.exclude) {
            included_fields |= 1u << static_cast<std::uint32_t>(r.field);
            if (hit)
                hit_fields |= 1u << static_cast<std::uint32_t>(r.field);
        }
    }
    return included_fields == hit_fields;
}

}  // namespace unlinkd
