// Record types of the org.unlinkd.Unlinkd1 D-Bus API
// (dbus/org.unlinkd.Unlinkd1.xml), shared by the daemon and unlinkctl; the
// names are in core/bus_names.h.
#pragma once

#include <sdbus-c++/Types.h>

#include <cstdint>
#include <string>

#include "core/bus_names.h"

namespace unlinkd::bus {

// a(uuusttts): pid, uid, loginuid, comm, deletes, failures, last delete
// (realtime usec), unit
using ProcessRow = sdbus::Struct<std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::uint64_t,
                                 std::uint64_t, std::uint64_t, std::string>;
// (tuuusssiss): time usec, pid, uid, loginuid, comm, exe, path, result, unit, op
using EventRow = sdbus::Struct<std::uint64_t, std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::string,
                               std::string, std::int32_t, std::string, std::string>;

}  // namespace unlinkd::bus
