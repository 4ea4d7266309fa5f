// Who may do what on the D-Bus API (spec section 4). Pure: the caller's
// credentials come from the bus; this decides.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unlinkd {

struct Caller {
    std::uint32_t uid = 0;
    std::vector<std::uint32_t> groups;  // primary and supplementary gids
};

class AccessPolicy {
public:
    // `reader_gid`: the group that may read every uid's data (default adm);
    // nothing when that group does not exist on this system.
    explicit AccessPolicy(std::vector<std::uint32_t> reader_gids = {}) : reader_gids_(std::move(reader_gids)) {}

    // SetFilters, SetAttachMode, Reset without asking polkit: root only.
    // Everyone else is asked about through polkit (below).
    bool may_change_state_directly(const Caller& c) const { return c.uid == 0; }
    // Root and the reader group see every uid's processes and events.
    bool sees_all(const Caller& c) const;
    // Whether `c` may see a process or event of uid `subject`.
    bool may_see(const Caller& c, std::uint32_t subject) const { return sees_all(c) || c.uid == subject; }

private:
    std::vector<std::uint32_t> reader_gids_;
};

// The polkit side of changing state (spec section 4): which action a method
// needs, and what polkit's answer means for the caller. The bus call itself
// is dbus/polkit.cpp; every decision about it is here, once.
enum class StateChange { configure, reset };

// The change's action: SetFilters and SetAttachMode configure, Reset resets.
// Both are declared in org.unlinkd.Unlinkd1.policy (polkit's actions dir).
std::string_view polkit_action_id(StateChange change);

// How long polkit may take to answer. Non-interactive checks are answered
// from polkit's rules at once; when the caller allows interaction, polkit
// waits for an authentication agent and a human typing a password, which
// takes longer than sd-bus's default 25 s method timeout: the caller's own
// timeout (its choice) bounds that wait for the caller anyway, and ours only
// has to end a check nobody will ever answer.
std::uint64_t polkit_timeout_usec(bool interactive);

// The reply to the state-changing call: allowed, or an error name and text.
struct Authorization {
    bool allowed = false;
    std::string error;    // a D-Bus error name when not allowed
    std::string message;  // why, for the caller
};

// polkit answered CheckAuthorization with (is_authorized, is_challenge, ...).
// A challenge the caller did not allow to be interactive is
// InteractiveAuthorizationRequired (as systemd's daemons answer: the caller
// may retry allowing interaction); any other "no" is AccessDenied.
Authorization polkit_verdict(std::string_view action, bool is_authorized, bool is_challenge, bool interactive);

// polkit could not be asked or did not answer: `error` is the D-Bus error of
// the call to it (not on the bus, timed out, refused). The call is denied,
// saying why: without polkit only root changes state.
Authorization polkit_unavailable(std::string_view action, std::string_view error, std::string_view message);

}  // namespace unlinkd
