// The names of the org.unlinkd.Unlinkd1 D-Bus API (dbus/org.unlinkd.Unlinkd1.xml):
// bus name, objects, interface and error names. No dependency, so that the
// daemon, unlinkctl, the pure access rules and unlinkd-monitor (a GIO client)
// all take them from here.
#pragma once

namespace unlinkd::bus {

inline constexpr const char* name = "org.unlinkd.Unlinkd1";
inline constexpr const char* object_path = "/org/unlinkd/Unlinkd1";
inline constexpr const char* interface_name = "org.unlinkd.Unlinkd1";
// Signals addressed to one subscriber come from here: the bus policy denies
// receipt of the main object's broadcast signals to ordinary users, and its
// receive rules cannot tell a unicast signal from a broadcast one.
inline constexpr const char* subscription_path = "/org/unlinkd/Unlinkd1/Subscription";

inline constexpr const char* error_invalid_args = "org.freedesktop.DBus.Error.InvalidArgs";
inline constexpr const char* error_access_denied = "org.freedesktop.DBus.Error.AccessDenied";
// A polkit challenge the caller did not allow to be interactive (as systemd's daemons answer).
inline constexpr const char* error_interactive_required = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";
inline constexpr const char* error_limits_exceeded = "org.freedesktop.DBus.Error.LimitsExceeded";
inline constexpr const char* error_mode_unsupported = "org.unlinkd.Unlinkd1.Error.ModeUnsupported";

}  // namespace unlinkd::bus
