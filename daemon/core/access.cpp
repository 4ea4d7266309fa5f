#include "access.h"

#include "bus_names.h"

#include <algorithm>
#include <string>

namespace unlinkd {

bool AccessPolicy::sees_all(const Caller& c) const
{
    if (c.uid == 0)
        return true;
    return std::any_of(c.groups.begin(), c.groups.end(), [this](std::uint32_t g) {
        return std::find(reader_gids_.begin(), reader_gids_.end(), g) != reader_gids_.end();
    });
}

std::string_view polkit_action_id(StateChange change)
{
    switch (change) {
    case StateChange::configure:
        return "org.unlinkd.Unlinkd1.configure";
    case StateChange::reset:
        return "org.unlinkd.Unlinkd1.reset";
    }
    return "org.unlinkd.Unlinkd1.configure";
}

std::uint64_t polkit_timeout_usec(bool interactive)
{
    return interactive ? 300'000'000 : 25'000'000;
}

using bus::error_access_denied;
using bus::error_interactive_required;

Authorization polkit_verdict(std::string_view action, bool is_authorized, bool is_challenge, bool interactive)
{
    if (is_authorized)
        return {true, {}, {}};
    std::string a(action);
    if (is_challenge && !interactive)
        return {false, error_interactive_required,
                "polkit requires authentication for " + a + "; call again allowing interactive authorization"};
    if (is_challenge)
        return {false, error_access_denied, "polkit did not authorize " + a + ": authentication did not succeed"};
    return {false, error_access_denied, "polkit did not authorize " + a + " for this caller"};
}

Authorization polkit_unavailable(std::string_view action, std::string_view error, std::string_view message)
{
    std::string why;
    if (error == "org.freedesktop.DBus.Error.ServiceUnknown" || error == "org.freedesktop.DBus.Error.NameHasNoOwner")
        why = "polkit is not on the bus";
    else if (error == "org.freedesktop.DBus.Error.NoReply" || error == "org.freedesktop.DBus.Error.Timeout" ||
             error == "org.freedesktop.DBus.Error.TimedOut")
        why = "polkit did not answer in time";
    else
        why = "polkit failed (" + std::string(error) + ": " + std::string(message) + ")";
    return {false, error_access_denied,
            "only root may do this without polkit, and " + why + "; cannot authorize " + std::string(action)};
}

}  // namespace unlinkd
