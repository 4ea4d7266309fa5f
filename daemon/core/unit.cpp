#include "unit.h"

#include <array>

namespace unlinkd {

static std::string_view suffix_of(std::string_view name)
{
    auto dot = name.rfind('.');
    return dot == std::string_view::npos ? std::string_view{} : name.substr(dot);
}

bool is_cgroup_unit_name(std::string_view name)
{
    static constexpr std::array<std::string_view, 6> suffixes{".service", ".scope", ".slice",
                                                             ".socket", ".mount", ".swap"};
    if (name.size() > 255 || name.find('/') != std::string_view::npos)
        return false;
    auto suffix = suffix_of(name);
    if (suffix.empty() || suffix.size() == name.size())
        return false;
    for (auto s : suffixes)
        if (suffix == s)
            return true;
    return false;
}

std::string unit_from_cgroup_path(std::string_view path)
{
    size_t i = 0;
    while (i < path.size()) {
        size_t j = path.find('/', i);
        if (j == std::string_view::npos)
            j = path.size();
        std::string_view c = path.substr(i, j - i);
        i = j + 1;
        if (c.empty() || suffix_of(c) == ".slice")
            continue;
        return is_cgroup_unit_name(c) ? std::string(c) : std::string();
    }
    return {};
}

}  // namespace unlinkd
