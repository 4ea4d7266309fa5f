#include "config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <limits>
#include <variant>

#include "filter.h"

namespace unlinkd {

namespace {

using nlohmann::json;

Error key_error(const std::string& key, const std::string& what)
{
    return Error{EINVAL, "configuration key \"" + key + "\": " + what};
}

// Stores a whole number from low to high in `out`. JSON numbers: only
// non-negative integers pass (5.0 or -1 are typos).
template <typename T>
Status read_unsigned(const json& v, const std::string& key, T& out, std::uint64_t low, std::uint64_t high)
{
    if (!v.is_number_unsigned())
        return key_error(key, "must be a whole number from " + std::to_string(low) + " to " + std::to_string(high));
    auto n = v.get<std::uint64_t>();
    if (n < low || n > high)
        return key_error(key, std::to_string(n) + " is out of range (" + std::to_string(low) + " to " +
                                  std::to_string(high) + ")");
    out = static_cast<T>(n);
    return ok();
}

// The whole-number keys: where each goes and the range it must be in.
struct UnsignedKey {
    const char* key;
    std::variant<std::uint64_t Config::*, std::uint32_t Config::*> member;
    std::uint64_t low, high;
};
const UnsignedKey unsigned_keys[] = {
    {"max_journal_per_sec", &Config::max_journal_per_sec, 0, max_rate_per_sec},
    {"max_signals_per_sec", &Config::max_signals_per_sec, 0, max_rate_per_sec},
    {"summary_interval_sec", &Config::summary_interval_sec, 1, max_summary_interval_sec},
    {"recent_events", &Config::recent_events, 0, max_recent_events},
    {"max_processes", &Config::max_processes, 1, max_max_processes},
    {"ring_buffer_kib", &Config::ring_buffer_kib, 4, max_ring_buffer_kib},
};

Result<std::vector<std::string>> string_list(const json& v, const std::string& key)
{
    if (!v.is_array())
        return key_error(key, "must be a list of strings");
    std::vector<std::string> out;
    for (const auto& item : v) {
        if (!item.is_string())
            return key_error(key, "must be a list of strings; " + item.dump() + " is not a string");
        out.push_back(item.get<std::string>());
    }
    return out;
}

}  // namespace

Result<Config> parse_config(std::string_view text)
{
    // Parsed inside a list, so that an empty or comments-only file (a list of
    // nothing) means all defaults rather than a syntax error.
    // Appended piece by piece: GCC 12 at -O3 warns falsely about
    // "[" + std::string(text) (-Wrestrict, GCC PR 105651).
    std::string wrapped;
    wrapped.reserve(text.size() + 3);
    wrapped += '[';
    wrapped += text;
    wrapped += "\n]";
    json list;
    try {
        list = json::parse(wrapped, nullptr, true, /*ignore_comments=*/true);
    } catch (const json::exception& e) {
        // Not only parse_error: a number too large for a double is an
        // out_of_range thrown by the parser, which ended the daemon at a
        // reload (found by tests/fuzz, config/crash-number-overflow).
        return Error{EINVAL, std::string("the configuration is not valid JSON: ") + e.what()};
    }
    if (list.empty())
        return Config{};
    const json& doc = list.front();
    if (list.size() != 1 || !doc.is_object())
        return Error{EINVAL, "the configuration must be a JSON object ({\"key\": value, ...})"};

    Config c;
    // Not a structured binding: clang 14 (the fuzz build) cannot capture
    // one in the lambda below.
    for (const auto& item : doc.items()) {
        const std::string& key = item.key();
        const json& v = item.value();
        if (key == "mode") {
            if (!v.is_string())
                return key_error(key, "must be a string: auto, fentry, kprobe or tracepoint");
            auto m = parse_requested_mode(v.get<std::string>());
            if (!m)
                return key_error(key, "unknown mode \"" + v.get<std::string>() +
                                          "\": use auto, fentry, kprobe or tracepoint");
            c.mode = *m;
        } else if (key == "filters") {
            auto rules = string_list(v, key);
            if (!rules)
                return rules.error();
            if (auto parsed = parse_filter_rules(*rules); !parsed)
                return key_error(key, parsed.error().message);
            c.filters = std::move(*rules);
        } else if (auto u = std::find_if(std::begin(unsigned_keys), std::end(unsigned_keys),
                                          [&](const UnsignedKey& k) { return key == k.key; });
                   u != std::end(unsigned_keys)) {
            auto r = std::visit([&](auto member) { return read_unsigned(v, key, c.*member, u->low, u->high); },
                                u->member);
            if (!r)
                return r.error();
        } else if (key == "reader_group") {
            if (!v.is_string() || v.get<std::string>().empty())
                return key_error(key, "must be a group name");
            c.reader_group = v.get<std::string>();
        } else {
            return key_error(key, "unknown key (known: mode, filters, max_journal_per_sec, max_signals_per_sec, "
                                  "summary_interval_sec, recent_events, max_processes, ring_buffer_kib, "
                                  "reader_group)");
        }
    }
    return c;
}

StreamBudget stream_budget(const Config& c, bool foreground)
{
    if (foreground)
        return {true, 0};
    std::uint64_t per_sec = std::max(c.max_journal_per_sec, c.max_signals_per_sec);
    if (per_sec == 0)
        per_sec = c.recent_events;
    if (per_sec == 0)
        return {false, 0};
    return {true, static_cast<std::uint32_t>(std::min<std::uint64_t>(per_sec, UINT32_MAX))};
}

std::string serialize_state(const RuntimeState& state)
{
    json doc = json::object();
    if (state.mode)
        doc["mode"] = requested_mode_name(*state.mode);
    if (state.filters)
        doc["filters"] = *state.filters;
    doc["saved_usec"] = state.saved_usec;
    return doc.dump(2) + "\n";
}

Result<RuntimeState> parse_state(std::string_view text)
{
    RuntimeState s;
    try {
        json doc = json::parse(text);
        if (!doc.is_object())
            return Error{EINVAL, "the saved state is not a JSON object"};
        if (doc.contains("mode")) {
            auto m = parse_requested_mode(doc.at("mode").get<std::string>());
            if (!m)
                return Error{EINVAL, "the saved state names an unknown mode"};
            s.mode = *m;
        }
        if (doc.contains("filters")) {
            auto rules = doc.at("filters").get<std::vector<std::string>>();
            if (auto parsed = parse_filter_rules(rules); !parsed)
                return Error{EINVAL, "the saved filters are invalid: " + parsed.error().message};
            s.filters = std::move(rules);
        }
        if (doc.contains("saved_usec")) {
            // Checked first: converting a float out of int64's range is
            // undefined behaviour (found by tests/fuzz, config/state-float).
            const json& t = doc.at("saved_usec");
            if (!t.is_number_integer() ||
                (t.is_number_unsigned() && t.get<std::uint64_t>() > std::numeric_limits<std::int64_t>::max()))
                return Error{EINVAL, "the saved state's saved_usec is not a whole number of microseconds"};
            s.saved_usec = t.get<std::int64_t>();
        }
    } catch (const json::exception& e) {
        return Error{EINVAL, std::string("the saved state is unreadable: ") + e.what()};
    }
    return s;
}

bool state_in_force(std::optional<std::int64_t> config_mtime_usec, const RuntimeState& state)
{
    return !config_mtime_usec || *config_mtime_usec <= state.saved_usec;
}

RuntimeState record_runtime_change(const std::optional<RuntimeState>& saved,
                                   std::optional<std::int64_t> config_mtime_usec,
                                   const std::optional<RequestedMode>& mode,
                                   const std::optional<std::vector<std::string>>& filters, std::int64_t now_usec)
{
    RuntimeState state;
    if (saved && state_in_force(config_mtime_usec, *saved))
        state = *saved;
    if (mode)
        state.mode = mode;
    if (filters)
        state.filters = filters;
    state.saved_usec = now_usec;
    return state;
}

Effective choose_effective(const Config& config, std::optional<std::int64_t> config_mtime_usec,
                           const std::optional<RuntimeState>& state,
                           const std::optional<RequestedMode>& command_line_mode,
                           const std::optional<std::vector<std::string>>& command_line_filters)
{
    Effective e;
    e.mode = config.mode;
    e.filters = config.filters;
    bool state_wins = state && state_in_force(config_mtime_usec, *state);
    if (state_wins && state->mode) {
        e.mode = *state->mode;
        e.mode_from = "saved runtime state";
    }
    if (state_wins && state->filters) {
        e.filters = *state->filters;
        e.filters_from = "saved runtime state";
    }
    if (command_line_mode) {
        e.mode = *command_line_mode;
        e.mode_from = "command line";
    }
    if (command_line_filters) {
        e.filters = *command_line_filters;
        e.filters_from = "command line";
    }
    return e;
}

}  // namespace unlinkd
