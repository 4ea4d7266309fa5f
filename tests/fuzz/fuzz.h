// Shared by the fuzz targets: the libFuzzer entry point, a check that
// aborts (so libFuzzer and the plain regression runner both report it), and
// the input splitting the targets use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

namespace fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size)
{
    return {reinterpret_cast<const char*>(data), size};
}

// Lines of the input, as a list of arguments (rules): readable seeds, and a
// newline inside a rule is the one byte a seed cannot hold.
inline std::vector<std::string> lines(std::string_view text)
{
    std::vector<std::string> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        if (nl == std::string_view::npos)
            break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

// UTF-8 as D-Bus accepts it (sd-bus's utf8_is_valid plus its refusal of
// noncharacters), written independently of core/escape.cpp so that the
// escaping function is checked against something other than itself.
inline bool dbus_valid_utf8(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b == 0)
            return false;
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
        if (n == 0 || b > 0xf4 || i + n > s.size())
            return false;
        std::uint32_t cp = b & (0x7f >> n);
        for (std::size_t k = 1; k < n; ++k) {
            auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (c & 0x3f);
        }
        static constexpr std::uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
            return false;
        i += n;
    }
    return true;
}

inline bool has_control(std::string_view s)
{
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f)
            return true;
    return false;
}

}  // namespace fuzz
