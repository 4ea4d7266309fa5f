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
#include <memory>
#include <optional>
#include <string>

#include "engine.h"

namespace unlinkd {

struct BusOptions {
    std::optional<std::string> address;  // --bus-address; the system bus when empty
    std::uint64_t max_signals_per_sec = 100;
    std::uint64_t summary_interval_sec = 1;
    std::size_t recent_events = 1024;
    std::string reader_group = "adm";
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

private:
    class State;
    std::unique_ptr<State> state_;
};

}  // namespace unlinkd
