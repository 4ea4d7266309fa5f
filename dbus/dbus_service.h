// The D-Bus publisher and control surface (spec section 4): owns the bus
// connection, the org.unlinkd.Unlinkd1 object, the signals and the
// subscribers. Runs on the daemon's loop thread; the engine stays the one
// owner of state, this only reads it and calls its control methods.
//
// If the bus is not there at start (or goes away), the daemon keeps
// counting, says so once, and connects when the bus appears.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kernel/engine.h"

namespace unlinkd {

struct BusOptions {
    std::optional<std::string> address;  // --bus-address; the system bus when empty
    std::uint64_t max_signals_per_sec = 100;
    std::size_t recent_events = 1024;
    std::string reader_group = "adm";
    // The name is ours (the daemon may now tell systemd it is ready).
    std::function<void()> on_name_acquired;
    // A client changed the filters or the mode (the daemon saves them).
    std::function<void()> on_runtime_change;
};

class BusService : public EventSink {
public:
    BusService(sd_event* loop, Engine& engine, BusOptions options);
    ~BusService() override;
    BusService(const BusService&) = delete;
    BusService& operator=(const BusService&) = delete;

    // Connects now, or keeps trying every two seconds.
    void start();

    void on_event(const Event& event) override;

    // A configuration reload: new rate, buffer size and reader group (the
    // address and callbacks stay).
    void reconfigure(const BusOptions& options);
    // Sends Summary with the processes whose counts changed since the last
    // call (nothing when none did). The daemon's tick calls it every
    // summary_interval_sec while counts move.
    void send_summary();
    // Tells clients that properties changed outside a D-Bus call (a reload).
    void properties_changed(const std::vector<std::string>& names);

private:
    class State;
    std::unique_ptr<State> state_;
};

}  // namespace unlinkd
