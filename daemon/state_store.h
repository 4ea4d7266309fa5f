// Reading the configuration file and reading/writing the runtime state file:
// the I/O around config.h's pure parsing and rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/result.h"

namespace unlinkd {

struct LoadedConfig {
    Config config;
    std::optional<std::int64_t> mtime_usec;  // empty: no file, defaults
};

// A missing file at the default path means defaults; a missing file named on
// the command line (`required`) is an error, like a broken one.
Result<LoadedConfig> load_config_file(const std::string& path, bool required);

// $STATE_DIRECTORY (set by systemd's StateDirectory=) or /var/lib/unlinkd.
std::string state_directory();

// The saved runtime state, or nothing when there is none. A broken state file
// is reported and ignored (the configuration then applies).
std::optional<RuntimeState> load_runtime_state(const std::string& directory);

// Written to a temporary file, synced and renamed over the old one, so a
// crash leaves either the old or the new state.
Status save_runtime_state(const std::string& directory, const RuntimeState& state);

}  // namespace unlinkd
