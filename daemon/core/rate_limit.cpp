#include "rate_limit.h"

namespace unlinkd {

bool RateLimiter::allow(std::uint64_t now_usec)
{
    if (!started_ || now_usec >= window_start_usec_ + 1000000) {
        window_start_usec_ = now_usec;
        used_in_window_ = 0;
        started_ = true;
    }
    if (used_in_window_ < per_second_) {
        ++used_in_window_;
        return true;
    }
    ++suppressed_total_;
    ++suppressed_pending_;
    return false;
}

std::uint64_t RateLimiter::take_suppressed()
{
    std::uint64_t n = suppressed_pending_;
    suppressed_pending_ = 0;
    return n;
}

}  // namespace unlinkd
