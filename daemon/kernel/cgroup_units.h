// Maps cgroup ids (as the kernel records them per process) to systemd units.
// Learns from events, whose cgroup path the kernel sends, and on a miss
// scans the cgroup v2 tree, where a directory's inode number is its id.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace unlinkd {

class CgroupUnits {
public:
    void learn(std::uint64_t cgroup_id, const std::string& unit);
    // Empty when the id is unknown (a cgroup gone before anyone asked) or has no unit.
    std::string unit_of(std::uint64_t cgroup_id);

private:
    void rescan();
    std::unordered_map<std::uint64_t, std::string> units_;
    std::chrono::steady_clock::time_point last_scan_{};
    bool scanned_ = false;
};

// Where the cgroup v2 hierarchy is mounted ("/sys/fs/cgroup", or
// "/sys/fs/cgroup/unified" on hybrid systems); empty if nowhere.
std::string cgroup2_mount_point();

}  // namespace unlinkd
