// Who may do what on the D-Bus API (spec section 4). Pure: the caller's
// credentials come from the bus; this decides.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace unlinkd {

struct Caller {
    std::uint32_t uid = 0;
    std::vector<std::uint32_t> groups;  // primary and supplementary gids
};

class AccessPolicy {
public:
    // `reader_gid`: the group that may read every uid's data (default adm);
    // nothing when that group does not exist on this system.
    explicit AccessPolicy(std::vector<std::uint32_t> reader_gids = {}) : reader_gids_(std::move(reader_gids)) {}

    // SetFilters, SetAttachMode, Reset: root only.
    bool may_change_state(const Caller& c) const { return c.uid == 0; }
    // Root and the reader group see every uid's processes and events.
    bool sees_all(const Caller& c) const;
    // Whether `c` may see a process or event of uid `subject`.
    bool may_see(const Caller& c, std::uint32_t subject) const { return sees_all(c) || c.uid == subject; }

private:
    std::vector<std::uint32_t> reader_gids_;
};

}  // namespace unlinkd
