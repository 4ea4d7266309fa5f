#include "cgroup_units.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <sys/stat.h>

#include "core/unit.h"

namespace unlinkd {

std::string cgroup2_mount_point()
{
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mountpoint options... - fstype source superoptions
        auto dash = line.find(" - ");
        if (dash == std::string::npos)
            continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype;
        if (fstype != "cgroup2")
            continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, dev, root, mount_point;
        head >> id >> parent >> dev >> root >> mount_point;
        return mount_point;
    }
    return {};
}

void CgroupUnits::learn(std::uint64_t cgroup_id, const std::string& unit)
{
    if (cgroup_id)
        units_[cgroup_id] = unit;
}

std::string CgroupUnits::unit_of(std::uint64_t cgroup_id)
{
    auto it = units_.find(cgroup_id);
    if (it != units_.end())
        return it->second;
    // A miss costs a walk of the tree: at most one a second.
    auto now = std::chrono::steady_clock::now();
    if (!scanned_ || now - last_scan_ > std::chrono::seconds(1)) {
        rescan();
        it = units_.find(cgroup_id);
        if (it != units_.end())
            return it->second;
    }
    return {};
}

void CgroupUnits::rescan()
{
    namespace fs = std::filesystem;
    last_scan_ = std::chrono::steady_clock::now();
    scanned_ = true;
    std::string root = cgroup2_mount_point();
    if (root.empty())
        return;
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        if (!it->is_directory(ec) || it->is_symlink(ec))
            continue;
        struct stat st {};
        if (::stat(it->path().c_str(), &st) != 0)
            continue;
        std::string rel = it->path().string().substr(root.size());
        units_[static_cast<std::uint64_t>(st.st_ino)] = unit_from_cgroup_path(rel);
    }
}

}  // namespace unlinkd
