// Asks polkit whether a bus caller may change state (spec section 4), on the
// daemon's own connection and without blocking its loop: the answer comes
// back as a callback from the loop, as systemd's daemons do it
// (CheckAuthorization with a "system-bus-name" subject, so polkit itself
// looks up the caller's credentials and session from the bus). What the
// answer means is decided in core/access.h; this is the bus call alone.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/access.h"

namespace unlinkd {

// Whether the caller set ALLOW_INTERACTIVE_AUTHORIZATION on `call`: only then
// may polkit start an authentication dialog for it.
bool allows_interactive_authorization(const sdbus::Message& call);

class Polkit {
public:
    explicit Polkit(sdbus::IConnection& connection);
    // Pending checks are cancelled: their callbacks never run.
    ~Polkit();
    Polkit(const Polkit&) = delete;
    Polkit& operator=(const Polkit&) = delete;

    using Done = std::function<void(const Authorization&)>;
    // Asks whether the bus client `sender` (a unique name) may do `action`;
    // `done` runs once, from the loop, with polkit's verdict, or with a
    // refusal that says why when polkit is not there, fails or does not
    // answer within polkit_timeout_usec().
    void check(const std::string& sender, std::string_view action, bool interactive, Done done);

private:
    std::unique_ptr<sdbus::IProxy> proxy_;
};

}  // namespace unlinkd
