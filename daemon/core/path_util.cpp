#include "path_util.h"

#include <vector>

#include "unlinkd.h"

namespace unlinkd {

std::uint64_t fnv1a64(std::string_view bytes)
{
    std::uint64_t h = UNLINKD_FNV_OFFSET;
    for (unsigned char c : bytes)
        h = (h ^ c) * UNLINKD_FNV_PRIME;
    return h;
}

std::optional<std::string> join_normalised(std::string_view dir, std::string_view name)
{
    if (name.empty() || name.front() != '/') {
        if (dir.empty() || dir.front() != '/')
            return std::nullopt;
    } else {
        dir = "";
    }
    std::vector<std::string_view> parts;
    auto take = [&parts](std::string_view s) {
        size_t i = 0;
        while (i <= s.size()) {
            size_t j = s.find('/', i);
            if (j == std::string_view::npos)
                j = s.size();
            std::string_view c = s.substr(i, j - i);
            if (c == "..") {
                if (!parts.empty())
                    parts.pop_back();
            } else if (!c.empty() && c != ".") {
                parts.push_back(c);
            }
            i = j + 1;
        }
    };
    take(dir);
    take(name);
    std::string out;
    for (auto p : parts) {
        out += '/';
        out += p;
    }
    return out.empty() ? std::string("/") : out;
}

bool path_is_under(std::string_view path, std::string_view prefix)
{
    if (prefix == "/")
        return !path.empty() && path.front() == '/';
    if (path.substr(0, prefix.size()) != prefix)
        return false;
    return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace unlinkd
