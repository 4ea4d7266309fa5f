#include "bus_args.h"

#include <cerrno>

#include "escape.h"

namespace unlinkd {

Status check_count(std::uint32_t count)
{
    if (count == 0)
        return Error{EINVAL, "count must be 1 or more"};
    return ok();
}

Result<std::vector<FilterRule>> check_filter_rules(const std::vector<std::string>& rules)
{
    return parse_filter_rules(rules);
}

Result<RequestedMode> check_attach_mode(std::string_view mode)
{
    if (auto requested = parse_requested_mode(mode))
        return *requested;
    // At most 64 bytes of the caller's input, escaped, go back in the message.
    return Error{EINVAL, "unknown attach mode \"" + shown_input(mode, 64) + "\": use auto, fentry, kprobe or tracepoint"};
}

}  // namespace unlinkd
