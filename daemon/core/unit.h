// The systemd unit a cgroup v2 path belongs to. Pure.
#pragma once

#include <string>
#include <string_view>

namespace unlinkd {

// The first non-slice unit on the path, as systemd assigns processes to
// units: "/system.slice/cron.service" -> "cron.service",
// "/user.slice/user-1000.slice/user@1000.service/app.slice/x.service" ->
// "user@1000.service", "/init.scope" -> "init.scope". Empty when the path has
// no unit (the root, or slices only).
std::string unit_from_cgroup_path(std::string_view cgroup_path);

// True for a name systemd could give a unit that owns a cgroup
// (service, scope, slice, socket, mount, swap).
bool is_cgroup_unit_name(std::string_view name);

}  // namespace unlinkd
