#include "access.h"

#include <algorithm>

namespace unlinkd {

bool AccessPolicy::sees_all(const Caller& c) const
{
    if (c.uid == 0)
        return true;
    return std::any_of(c.groups.begin(), c.groups.end(), [this](std::uint32_t g) {
        return std::find(reader_gids_.begin(), reader_gids_.end(), g) != reader_gids_.end();
    });
}

}  // namespace unlinkd
