// The daemon's one sd-event loop: every event source is made through the
// add_* functions here, which check the result and name the source (its
// description shows in sd-event's debug log), and is owned by an
// EventSource, which disables and frees it when it goes. Also the bridge
// that runs the sdbus-c++ connection inside the loop.
#pragma once

#include <sdbus-c++/IConnection.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <utility>

#include "core/result.h"

namespace unlinkd {

class EventSource {
public:
    EventSource() = default;
    explicit EventSource(sd_event_source* source) : source_(source) {}
    ~EventSource() { sd_event_source_disable_unref(source_); }
    EventSource(EventSource&& other) noexcept : source_(std::exchange(other.source_, nullptr)) {}
    EventSource& operator=(EventSource&& other) noexcept
    {
        if (this != &other) {
            sd_event_source_disable_unref(source_);
            source_ = std::exchange(other.source_, nullptr);
        }
        return *this;
    }
    EventSource(const EventSource&) = delete;
    EventSource& operator=(const EventSource&) = delete;

    sd_event_source* get() const { return source_; }
    explicit operator bool() const { return source_ != nullptr; }
    // SD_EVENT_ON, SD_EVENT_OFF or SD_EVENT_ONESHOT.
    void enable(int how) const { sd_event_source_set_enabled(source_, how); }
    bool enabled() const;
    // Timers: fire at `usec` (CLOCK_MONOTONIC, absolute), once.
    void fire_at(std::uint64_t usec) const;
    // Timers: fire `usec` from the loop's current time, once.
    void fire_in(std::uint64_t usec) const;

private:
    sd_event_source* source_ = nullptr;
};

// The loop's time of this iteration, CLOCK_MONOTONIC microseconds.
std::uint64_t loop_now(sd_event* loop);

// Each adds a source to `loop` named `name`, or says which could not be
// added and why. Timers are CLOCK_MONOTONIC, relative to now, one-shot.
Result<EventSource> add_timer(sd_event* loop, const char* name, std::uint64_t usec_from_now,
                              sd_event_time_handler_t handler, void* userdata);
Result<EventSource> add_io(sd_event* loop, const char* name, int fd, std::uint32_t events,
                           sd_event_io_handler_t handler, void* userdata);
Result<EventSource> add_signal(sd_event* loop, const char* name, int signal, sd_event_signal_handler_t handler,
                               void* userdata);
// Runs once the loop has nothing more urgent to do, then stays off until
// enabled again (SD_EVENT_ONESHOT).
Result<EventSource> add_defer(sd_event* loop, const char* name, sd_event_handler_t handler, void* userdata);

// Runs an sdbus-c++ 1.x connection inside the loop, on the loop's thread
// (sdbus-c++ 1.2 has no attachSdEventLoop). Mirrors what sd_bus_attach_event()
// does: an IO source on the bus fd whose events are refreshed before every
// poll, a timer armed to the bus's timeout, and processPendingRequest() until
// it has nothing left.
class SdEventBus {
public:
    // `on_error` runs (from the loop) when processing throws, e.g. the bus
    // went away; the binding is detached by then. Throws if the sources
    // cannot be added.
    SdEventBus(sd_event* loop, sdbus::IConnection& connection, std::function<void(const std::exception&)> on_error);
    SdEventBus(const SdEventBus&) = delete;
    SdEventBus& operator=(const SdEventBus&) = delete;

private:
    void refresh();
    void process();
    void fail(const std::exception& e);
    static int on_prepare(sd_event_source*, void* self);
    static int on_io(sd_event_source*, int, uint32_t, void* self);
    static int on_time(sd_event_source*, uint64_t, void* self);

    sdbus::IConnection& connection_;
    std::function<void(const std::exception&)> on_error_;
    EventSource io_;
    EventSource timer_;
};

}  // namespace unlinkd
