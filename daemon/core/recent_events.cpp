#include "recent_events.h"

#include <algorithm>

namespace unlinkd {

void RecentEvents::add(const Event& e)
{
    if (capacity_ == 0)
        return;
    if (events_.size() == capacity_)
        events_.pop_front();
    events_.push_back(e);
}

void RecentEvents::set_capacity(std::size_t capacity)
{
    capacity_ = capacity;
    while (events_.size() > capacity_)
        events_.pop_front();
}

std::vector<Event> RecentEvents::newest(std::size_t count, const std::function<bool(const Event&)>& visible) const
{
    std::vector<Event> out;
    for (auto it = events_.rbegin(); it != events_.rend() && out.size() < count; ++it)
        if (visible(*it))
            out.push_back(*it);
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace unlinkd
