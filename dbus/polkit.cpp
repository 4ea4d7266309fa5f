#include "polkit.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-bus.h>

#include <cstdint>
#include <map>
#include <utility>

namespace unlinkd {

namespace {

constexpr const char* polkit_name = "org.freedesktop.PolicyKit1";
constexpr const char* polkit_path = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* polkit_interface = "org.freedesktop.PolicyKit1.Authority";
// CheckAuthorization's flags: AllowUserInteraction.
constexpr std::uint32_t allow_user_interaction = 1;

// sdbus-c++ 1.2 has no getter for a message's ALLOW_INTERACTIVE_AUTHORIZATION
// flag; sd-bus has. The sd_bus_message is Message's protected msg_, reached
// through a pointer to that member, which a derived class may form (no cast
// of the object, no copy of the message).
struct RawMessage : sdbus::Message {
    static sd_bus_message* of(const sdbus::Message& m)
    {
        constexpr auto member = &RawMessage::msg_;
        return static_cast<sd_bus_message*>(m.*member);
    }
};

}  // namespace

bool allows_interactive_authorization(const sdbus::Message& call)
{
    sd_bus_message* m = RawMessage::of(call);
    return m && sd_bus_message_get_allow_interactive_authorization(m) > 0;
}

Polkit::Polkit(sdbus::IConnection& connection) : proxy_(sdbus::createProxy(connection, polkit_name, polkit_path))
{
    proxy_->finishRegistration();
}

// The proxy's pending calls go with it (sdbus-c++ drops their slots), so no
// callback runs after the bus side is torn down.
Polkit::~Polkit() = default;

void Polkit::check(const std::string& sender, std::string_view action, bool interactive, Done done)
{
    std::string action_id(action);
    try {
        auto call = proxy_->createMethodCall(polkit_interface, "CheckAuthorization");
        // Subject (sa{sv}): the caller's unique name, which polkit resolves
        // to its process, uid and session itself; details a{ss}: none;
        // flags u; cancellation id s: none.
        std::map<std::string, sdbus::Variant> subject{{"name", sdbus::Variant(sender)}};
        call << sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>(std::string("system-bus-name"), subject);
        call << action_id << std::map<std::string, std::string>{}
             << (interactive ? allow_user_interaction : std::uint32_t{0}) << std::string();
        proxy_->callMethod(
            call,
            [done, action_id, interactive](sdbus::MethodReply& reply, const sdbus::Error* error) {
                if (error) {
                    done(polkit_unavailable(action_id, error->getName(), error->getMessage()));
                    return;
                }
                sdbus::Struct<bool, bool, std::map<std::string, std::string>> result;
                try {
                    reply >> result;
                } catch (const sdbus::Error& e) {
                    done(polkit_unavailable(action_id, e.getName(), "unexpected reply: " + e.getMessage()));
                    return;
                }
                done(polkit_verdict(action_id, result.get<0>(), result.get<1>(), interactive));
            },
            polkit_timeout_usec(interactive));
    } catch (const sdbus::Error& e) {
        // Not even sent (the connection is failing): the answer is no, now.
        spdlog::debug("cannot ask polkit: {}", e.what());
        done(polkit_unavailable(action_id, e.getName(), e.getMessage()));
    }
}

}  // namespace unlinkd
