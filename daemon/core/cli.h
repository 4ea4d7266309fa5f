// The daemon's command line (spec section 6), parsed without side effects.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "modes.h"
#include "result.h"

namespace unlinkd {

struct Options {
    bool foreground = false;
    bool json = false;
    bool list_modes = false;
    bool help = false;
    bool version = false;
    std::optional<RequestedMode> mode;      // --mode
    std::vector<std::string> filters;       // --filter, repeatable
    std::optional<std::string> config_path; // --config
    std::optional<std::string> bus_address; // --bus-address
};

Result<Options> parse_command_line(const std::vector<std::string>& args);

std::string usage_text();

}  // namespace unlinkd
