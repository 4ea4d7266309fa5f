#include "event_loop.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace unlinkd {

namespace {

Result<EventSource> named(int r, sd_event_source* source, const char* name)
{
    if (r < 0)
        return Error{-r, std::string("cannot add the event source \"") + name + "\" to the loop: " + std::strerror(-r)};
    EventSource owned(source);
    sd_event_source_set_description(source, name);
    return owned;
}

}  // namespace

bool EventSource::enabled() const
{
    int how = SD_EVENT_OFF;
    return sd_event_source_get_enabled(source_, &how) >= 0 && how != SD_EVENT_OFF;
}

void EventSource::fire_at(std::uint64_t usec) const
{
    sd_event_source_set_time(source_, usec);
    enable(SD_EVENT_ONESHOT);
}

void EventSource::fire_in(std::uint64_t usec) const { fire_at(loop_now(sd_event_source_get_event(source_)) + usec); }

std::uint64_t loop_now(sd_event* loop)
{
    std::uint64_t now = 0;
    sd_event_now(loop, CLOCK_MONOTONIC, &now);
    return now;
}

Result<EventSource> add_timer(sd_event* loop, const char* name, std::uint64_t usec_from_now,
                              sd_event_time_handler_t handler, void* userdata)
{
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(loop, &s, CLOCK_MONOTONIC, usec_from_now, 0, handler, userdata);
    return named(r, s, name);
}

Result<EventSource> add_io(sd_event* loop, const char* name, int fd, std::uint32_t events,
                           sd_event_io_handler_t handler, void* userdata)
{
    sd_event_source* s = nullptr;
    int r = sd_event_add_io(loop, &s, fd, events, handler, userdata);
    return named(r, s, name);
}

Result<EventSource> add_signal(sd_event* loop, const char* name, int signal, sd_event_signal_handler_t handler,
                               void* userdata)
{
    sd_event_source* s = nullptr;
    int r = sd_event_add_signal(loop, &s, signal, handler, userdata);
    return named(r, s, name);
}

Result<EventSource> add_defer(sd_event* loop, const char* name, sd_event_handler_t handler, void* userdata)
{
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(loop, &s, handler, userdata);
    auto source = named(r, s, name);
    if (source)
        source->enable(SD_EVENT_ONESHOT);
    return source;
}

// ---- SdEventBus ----

SdEventBus::SdEventBus(sd_event* loop, sdbus::IConnection& connection, std::function<void(const std::exception&)> on_error)
    : connection_(connection), on_error_(std::move(on_error))
{
    auto poll_data = connection_.getEventLoopPollData();
    // POLLIN/POLLOUT have the values of EPOLLIN/EPOLLOUT.
    auto io = add_io(loop, "d-bus", poll_data.fd, static_cast<std::uint16_t>(poll_data.events), &SdEventBus::on_io,
                     this);
    if (!io)
        throw std::runtime_error(io.error().message);
    auto timer = add_timer(loop, "d-bus-timeout", 0, &SdEventBus::on_time, this);  // armed by refresh()
    if (!timer)
        throw std::runtime_error(timer.error().message);
    io_ = std::move(*io);
    timer_ = std::move(*timer);
    sd_event_source_set_prepare(io_.get(), &SdEventBus::on_prepare);
    timer_.enable(SD_EVENT_OFF);
}

void SdEventBus::refresh()
{
    auto poll_data = connection_.getEventLoopPollData();
    sd_event_source_set_io_events(io_.get(), static_cast<std::uint16_t>(poll_data.events));
    if (poll_data.timeout_usec == UINT64_MAX)
        timer_.enable(SD_EVENT_OFF);
    else
        timer_.fire_at(poll_data.timeout_usec);  // absolute CLOCK_MONOTONIC
}

void SdEventBus::process()
{
    try {
        while (connection_.processPendingRequest()) {
        }
    } catch (const std::exception& e) {
        fail(e);
    }
}

void SdEventBus::fail(const std::exception& e)
{
    io_ = EventSource();
    timer_ = EventSource();
    on_error_(e);
}

int SdEventBus::on_prepare(sd_event_source*, void* self)
{
    auto* bus = static_cast<SdEventBus*>(self);
    try {
        bus->refresh();
    } catch (const std::exception& e) {
        bus->fail(e);
    }
    return 0;
}

int SdEventBus::on_io(sd_event_source*, int, uint32_t, void* self)
{
    static_cast<SdEventBus*>(self)->process();
    return 0;
}

int SdEventBus::on_time(sd_event_source*, uint64_t, void* self)
{
    static_cast<SdEventBus*>(self)->process();
    return 0;
}

}  // namespace unlinkd
