// The checks the D-Bus methods make on their arguments before anything else
// (before the caller is even looked up): pure, so that unit tests and the
// fuzzer (tests/fuzz/fuzz_bus_args.cpp) reach them without a bus. Every
// error here is an InvalidArgs reply whose text is the Error's message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "filter.h"
#include "modes.h"
#include "result.h"

namespace unlinkd {

// GetTopProcesses(count), GetRecentEvents(count): 1 or more.
Status check_count(std::uint32_t count);

// SetFilters(rules): every rule parses (the first bad one is named).
Result<std::vector<FilterRule>> check_filter_rules(const std::vector<std::string>& rules);

// SetAttachMode(mode): auto, fentry, kprobe or tracepoint.
Result<RequestedMode> check_attach_mode(std::string_view mode);

}  // namespace unlinkd
