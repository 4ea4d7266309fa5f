// What the D-Bus object (dbus/dbus_service.h) asks of the daemon: the state
// it reads and the changes it requests. The Manager (daemon/manager.h)
// implements it; every change goes through the Manager's one change path,
// so a change over D-Bus and the same change from a reload (SIGHUP) are
// followed by the same steps. An interface, so that dbus/ depends on the
// core alone and the bus and the Manager do not call each other by name.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "aggregate.h"
#include "modes.h"
#include "result.h"

namespace unlinkd {

class Control {
public:
    virtual ~Control() = default;

    virtual Mode attached_mode() const = 0;
    virtual RequestedMode requested_mode() const = 0;
    virtual const ModeTable& modes() const = 0;
    virtual std::vector<std::string> filters() const = 0;
    // The per-CPU counters alone (cheap): tracked and evicted stay 0.
    virtual Totals counters() const = 0;
    // The counters plus the process table's size and evictions.
    virtual Totals totals() const = 0;
    virtual std::vector<ProcessStats> processes() = 0;

    // A mode switch drains the old attachment before it ends, so its result
    // comes later, from the loop: `done` runs once, when the switch is
    // complete or refused (the old mode then stays attached).
    using ModeDone = std::function<void(const Result<Mode>&)>;
    virtual void set_mode(RequestedMode requested, ModeDone done) = 0;
    // All rules or none: a bad rule is refused by name and the filter in
    // force stays.
    virtual Status set_filters(const std::vector<std::string>& rules) = 0;
    // Clears the per-process counts and the totals.
    virtual Status reset() = 0;

    // The bus name is ours: from now on clients find the daemon.
    virtual void bus_ready() = 0;
};

}  // namespace unlinkd
