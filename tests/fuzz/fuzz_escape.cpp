// escape_name() on any bytes: valid UTF-8 for D-Bus, no control character
// (so no new line), and unescape_name() gives the bytes back exactly. And
// unescape_name() on any text: only escape_name()'s own output is accepted.
#include "core/escape.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    auto bytes = fuzz::as_text(data, size);
    std::string escaped = unlinkd::escape_name(bytes);
    FUZZ_CHECK(fuzz::dbus_valid_utf8(escaped));
    FUZZ_CHECK(!fuzz::has_control(escaped));
    auto back = unlinkd::unescape_name(escaped);
    FUZZ_CHECK(back.has_value());
    FUZZ_CHECK(*back == bytes);
    // Text that needs no escaping is shown as it is.
    if (fuzz::dbus_valid_utf8(bytes) && !fuzz::has_control(bytes) && bytes.find('\\') == std::string_view::npos)
        FUZZ_CHECK(escaped == bytes);

    if (auto raw = unlinkd::unescape_name(bytes))
        FUZZ_CHECK(unlinkd::escape_name(*raw) == bytes);
    return 0;
}
