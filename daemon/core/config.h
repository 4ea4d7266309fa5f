// The configuration file (spec section 7) and the runtime state kept under
// /var/lib/unlinkd (filters and mode changed over D-Bus), and the one rule
// that decides which of them is in force. Pure: text in, values out; the
// daemon reads and writes the files (state_store.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modes.h"
#include "result.h"

namespace unlinkd {

inline constexpr const char* default_config_path = "/etc/unlinkd/unlinkd.json";
inline constexpr const char* default_state_directory = "/var/lib/unlinkd";

struct Config {
    RequestedMode mode{};                      // "mode"
    std::vector<std::string> filters;          // "filters", rules of spec section 3
    std::uint64_t max_journal_per_sec = 200;   // 0: no per-deletion entries
    std::uint64_t max_signals_per_sec = 100;   // 0: no Deleted signals
    std::uint64_t summary_interval_sec = 1;
    std::uint32_t recent_events = 1024;        // 0: GetRecentEvents is empty
    std::uint32_t max_processes = 16384;
    std::uint32_t ring_buffer_kib = 1024;
    std::string reader_group = "adm";
    bool operator==(const Config&) const = default;
};

// Bounds, so a typo cannot ask the kernel for gigabytes.
inline constexpr std::uint64_t max_rate_per_sec = 1'000'000;
inline constexpr std::uint64_t max_summary_interval_sec = 86400;
inline constexpr std::uint32_t max_recent_events = 1u << 20;
inline constexpr std::uint32_t max_max_processes = 1u << 22;
inline constexpr std::uint32_t max_ring_buffer_kib = 1u << 20;  // 1 GiB

// Parses the file's text: JSON with // and /* */ comments, every key
// optional. An unknown key, a wrong type, a value out of range or a bad
// filter rule is an error whose message names the key (and the rule).
Result<Config> parse_config(std::string_view text);

// How many events a second the kernel should stream: what the consumers can
// use. The journal takes max_journal_per_sec, signals max_signals_per_sec,
// and with neither the recent-events buffer at most `recent_events` a second;
// beyond that events are counted in the kernel and never streamed (their
// path is never resolved). With everything off the kernel only counts. The
// console (--foreground) prints every event: no limit.
struct StreamBudget {
    bool stream = true;
    std::uint32_t per_sec = 0;  // 0: no limit
    bool operator==(const StreamBudget&) const = default;
};
StreamBudget stream_budget(const Config& config, bool foreground);

// What D-Bus clients changed at run time, saved so it survives restarts.
struct RuntimeState {
    std::optional<RequestedMode> mode;
    std::optional<std::vector<std::string>> filters;
    std::int64_t saved_usec = 0;  // CLOCK_REALTIME when written
    bool operator==(const RuntimeState&) const = default;
};

std::string serialize_state(const RuntimeState& state);
Result<RuntimeState> parse_state(std::string_view text);

// Whether saved runtime changes are still in force: the file has not
// changed since they were saved (no file counts as older than any state).
bool state_in_force(std::optional<std::int64_t> config_mtime_usec, const RuntimeState& state);

// A change made over D-Bus at `now_usec`, recorded in the saved state: the
// field that changed is set; the other keeps its saved value while the saved
// state is in force, and is left to the file otherwise (a stale saved value
// must not come back with a later change of the other field).
RuntimeState record_runtime_change(const std::optional<RuntimeState>& saved,
                                   std::optional<std::int64_t> config_mtime_usec,
                                   const std::optional<RequestedMode>& mode,
                                   const std::optional<std::vector<std::string>>& filters, std::int64_t now_usec);

// The mode and filters in force. The rule (spec section 7, README):
// the command line wins over everything; otherwise saved runtime changes win
// over the file until the file changes, i.e. until the file's modification
// time is newer than the state's save time; otherwise the file.
struct Effective {
    RequestedMode mode{};
    std::vector<std::string> filters;
    const char* mode_from = "configuration";     // for the log: where each came from
    const char* filters_from = "configuration";
};
Effective choose_effective(const Config& config, std::optional<std::int64_t> config_mtime_usec,
                           const std::optional<RuntimeState>& state,
                           const std::optional<RequestedMode>& command_line_mode,
                           const std::optional<std::vector<std::string>>& command_line_filters);

}  // namespace unlinkd
