// Names and record types of the org.unlinkd.Unlinkd1 D-Bus API
// (dbus/org.unlinkd.Unlinkd1.xml), shared by the daemon and unlinkctl.
#pragma once

#include <sdbus-c++/Types.h>

#include <cstdint>
#include <string>

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
inline constexpr const char* error_limits_exceeded = "org.freedesktop.DBus.Error.LimitsExceeded";
inline constexpr const char* error_mode_unsupported = "org.unlinkd.Unlinkd1.Error.ModeUnsupported";

// a(uuusttts): pid, uid, loginuid, comm, deletes, failures, last delete
// (realtime usec), unit
using ProcessRow = sdbus::Struct<std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::uint64_t,
                                 std::uint64_t, std::uint64_t, std::string>;
// (tuuusssiss): time usec, pid, uid, loginuid, comm, exe, path, result, unit, op
using EventRow = sdbus::Struct<std::uint64_t, std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::string,
                               std::string, std::int32_t, std::string, std::string>;

}  // namespace unlinkd::bus
