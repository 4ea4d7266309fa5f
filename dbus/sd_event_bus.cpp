#include "sd_event_bus.h"

#include <poll.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace unlinkd {

SdEventBus::SdEventBus(sd_event* loop, sdbus::IConnection& connection, std::function<void(const std::exception&)> on_error)
    : loop_(loop), connection_(connection), on_error_(std::move(on_error))
{
    auto poll_data = connection_.getEventLoopPollData();
    // POLLIN/POLLOUT have the values of EPOLLIN/EPOLLOUT.
    if (sd_event_add_io(loop_, &io_, poll_data.fd, static_cast<std::uint16_t>(poll_data.events), &SdEventBus::on_io,
                        this) < 0 ||
        sd_event_add_time(loop_, &timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, &SdEventBus::on_time, this) < 0) {
        detach();
        throw std::runtime_error("cannot add the D-Bus connection to the event loop");
    }
    sd_event_source_set_prepare(io_, &SdEventBus::on_prepare);
    sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
}

SdEventBus::~SdEventBus() { detach(); }

void SdEventBus::detach()
{
    io_ = sd_event_source_disable_unref(io_);
    timer_ = sd_event_source_disable_unref(timer_);
}

void SdEventBus::refresh()
{
    auto poll_data = connection_.getEventLoopPollData();
    sd_event_source_set_io_events(io_, static_cast<std::uint16_t>(poll_data.events));
    if (poll_data.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(timer_, poll_data.timeout_usec);  // absolute CLOCK_MONOTONIC
        sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
    }
}

void SdEventBus::process()
{
    try {
        while (connection_.processPendingRequest()) {
        }
    } catch (const std::exception& e) {
        detach();
        on_error_(e);
    }
}

int SdEventBus::on_prepare(sd_event_source*, void* self)
{
    auto* bus = static_cast<SdEventBus*>(self);
    try {
        bus->refresh();
    } catch (const std::exception& e) {
        bus->detach();
        bus->on_error_(e);
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
