// The last N events, for GetRecentEvents. Pure.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <vector>

#include "event.h"

namespace unlinkd {

class RecentEvents {
public:
    explicit RecentEvents(std::size_t capacity) : capacity_(capacity) {}

    void add(const Event& e);
    // The newest `count` events for which `visible` holds, newest last.
    std::vector<Event> newest(std::size_t count, const std::function<bool(const Event&)>& visible) const;
    std::size_t size() const { return events_.size(); }
    // Keeps the newest `capacity` events from now on.
    void set_capacity(std::size_t capacity);

private:
    std::size_t capacity_;
    std::deque<Event> events_;
};

}  // namespace unlinkd
