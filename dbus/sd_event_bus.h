// Runs an sdbus-c++ 1.x connection inside the daemon's sd-event loop, on the
// loop's thread (sdbus-c++ 1.2 has no attachSdEventLoop). Mirrors what
// sd_bus_attach_event() does: an IO source on the bus fd whose events are
// refreshed before every poll, a timer armed to the bus's timeout, and
// processPendingRequest() until it has nothing left.
#pragma once

#include <sdbus-c++/IConnection.h>
#include <systemd/sd-event.h>

#include <exception>
#include <functional>

namespace unlinkd {

class SdEventBus {
public:
    // `on_error` runs (from the loop) when processing throws, e.g. the bus
    // went away; the binding is detached by then.
    SdEventBus(sd_event* loop, sdbus::IConnection& connection, std::function<void(const std::exception&)> on_error);
    ~SdEventBus();
    SdEventBus(const SdEventBus&) = delete;
    SdEventBus& operator=(const SdEventBus&) = delete;

private:
    void refresh();
    void process();
    void detach();
    static int on_prepare(sd_event_source*, void* self);
    static int on_io(sd_event_source*, int, uint32_t, void* self);
    static int on_time(sd_event_source*, uint64_t, void* self);

    sd_event* loop_;
    sdbus::IConnection& connection_;
    std::function<void(const std::exception&)> on_error_;
    sd_event_source* io_ = nullptr;
    sd_event_source* timer_ = nullptr;
};

}  // namespace unlinkd
