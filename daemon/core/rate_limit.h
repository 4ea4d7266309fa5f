// A per-second budget: at most `per_second` events are let through in any
// one-second window; the rest are counted. Used for Deleted signals (and
// journal entries). Pure: the caller passes the time.
#pragma once

#include <cstdint>

namespace unlinkd {

class RateLimiter {
public:
    explicit RateLimiter(std::uint64_t per_second) : per_second_(per_second) {}

    // True if one more event may go out at `now_usec` (monotonic).
    bool allow(std::uint64_t now_usec);

    void set_rate(std::uint64_t per_second) { per_second_ = per_second; }
    std::uint64_t rate() const { return per_second_; }
    // Events refused since the start.
    std::uint64_t suppressed_total() const { return suppressed_total_; }
    // Events refused since the last call (for "N not logged" entries).
    std::uint64_t take_suppressed();

private:
    std::uint64_t per_second_;
    std::uint64_t window_start_usec_ = 0;
    std::uint64_t used_in_window_ = 0;
    bool started_ = false;
    std::uint64_t suppressed_total_ = 0;
    std::uint64_t suppressed_pending_ = 0;
};

}  // namespace unlinkd
