// The D-Bus publisher and control surface (spec section 4): owns the bus
// connection, the org.unlinkd.Unlinkd1 object, the signals and the
// subscribers. Runs on the daemon's loop thread. It reads state from and
// asks for changes through Control (core/control.h), which the Manager
// implements: every method validates, authorizes, asks, replies.
//
// If the bus is not there at start (or goes away), the daemon keeps
// counting, says so once, and connects when the bus appears.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/control.h"
#include "core/event.h"

namespace unlinkd {

struct BusOptions {
    std::optional<std::string> address;  // --bus-address; the system bus when empty
    std::uint64_t max_signals_per_sec = 100;
    std::size_t recent_events = 1024;
    std::string reader_group = "adm";
};

class BusService : public EventSink {
public:
    BusService(sd_event* loop, Control& control, BusOptions options);
    ~BusService() override;
    BusService(const BusService&) = delete;
    BusService& operator=(const BusService&) = delete;

    // Connects now, or keeps trying every two seconds. Control::bus_ready()
    // is called once the name is ours.
    void start();

    void on_event(const Event& event) override;

    // A configuration reload: new rate, buffer size and reader group (the
    // address stays).
    void reconfigure(const BusOptions& options);
    // Sends Summary with the processes whose counts changed since the last
    // call (nothing when none did). The daemon's tick calls it every
    // summary_interval_sec while counts move.
    void send_summary();
    // Tells clients that properties changed.
    void properties_changed(const std::vector<std::string>& names);
    // The counts were reset: the next Summary compares with nothing.
    void counts_reset();

private:
    class State;
    std::unique_ptr<State> state_;
};

}  // namespace unlinkd
