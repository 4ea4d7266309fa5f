#include "escape.h"

#include <cstdint>
#include <string>

namespace unlinkd {

namespace {

// Length of the valid character starting at s[i] (see escape_name), or 0.
std::size_t valid_char_length(std::string_view s, std::size_t i)
{
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char b = byte(i);
    std::size_t n;
    std::uint32_t cp;
    if (b < 0x80)
        return b < 0x20 || b == 0x7f ? 0 : 1;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        cp = b & 0x07;
    } else {
        return 0;  // a continuation byte, 0xc0/0xc1 (overlong) or above 0xf4
    }
    if (i + n > s.size())
        return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (byte(i + k) & 0x3f);
    }
    bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    bool noncharacter = (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe;
    if (overlong || surrogate || cp > 0x10ffff || noncharacter)
        return 0;
    return n;
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

}  // namespace

std::string escape_name(std::string_view bytes)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        if (bytes[i] == '\\') {
            out += "\\\\";
            ++i;
            continue;
        }
        if (std::size_t n = valid_char_length(bytes, i)) {
            out.append(bytes.substr(i, n));
            i += n;
            continue;
        }
        auto b = static_cast<unsigned char>(bytes[i++]);
        out += "\\x";
        out += hex[b >> 4];
        out += hex[b & 0xf];
    }
    return out;
}

std::optional<std::string> unescape_name(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] != '\\') {
            std::size_t n = valid_char_length(text, i);
            if (!n)
                return std::nullopt;  // escape_name() never leaves such a byte
            out.append(text.substr(i, n));
            i += n;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '\\') {
            out += '\\';
            i += 2;
            continue;
        }
        if (i + 3 >= text.size() || text[i + 1] != 'x')
            return std::nullopt;
        int hi = hex_value(text[i + 2]), lo = hex_value(text[i + 3]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out += static_cast<char>(hi << 4 | lo);
        i += 4;
    }
    // \x41 is not how escape_name() writes "A": only its own text is accepted,
    // so the two are exact inverses.
    if (escape_name(out) != text)
        return std::nullopt;
    return out;
}

std::string shown_input(std::string_view bytes, std::size_t max_bytes)
{
    if (bytes.size() <= max_bytes)
        return escape_name(bytes);
    // Cut on a character boundary: a cut inside one would show as \xNN bytes.
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(bytes[cut]) & 0xc0) == 0x80)
        --cut;
    return escape_name(bytes.substr(0, cut)) + "... (" + std::to_string(bytes.size()) + " bytes)";
}

}  // namespace unlinkd
