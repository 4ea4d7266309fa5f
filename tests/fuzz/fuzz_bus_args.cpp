// The D-Bus methods' argument checks (core/bus_args.h) on any arguments.
// The first byte picks the method, the rest are its arguments: a count
// (4 bytes, little-endian), rules (one per line) or a mode name. No crash;
// a refusal's message, sent as the InvalidArgs text, is valid D-Bus UTF-8
// whenever the arguments were (the bus only delivers valid strings).
#include <cstring>

#include "core/bus_args.h"
#include "fuzz.h"

using namespace unlinkd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 1)
        return 0;
    auto args = fuzz::as_text(data + 1, size - 1);
    bool valid_in = fuzz::dbus_valid_utf8(args);
    switch (data[0] % 3) {
    case 0: {
        std::uint32_t count = 0;
        std::memcpy(&count, args.data(), std::min<std::size_t>(args.size(), sizeof(count)));
        auto r = check_count(count);
        FUZZ_CHECK(r.ok() == (count != 0));
        if (!r)
            FUZZ_CHECK(fuzz::dbus_valid_utf8(r.error().message));
        break;
    }
    case 1: {
        auto r = check_filter_rules(fuzz::lines(args));
        if (!r && valid_in)
            FUZZ_CHECK(fuzz::dbus_valid_utf8(r.error().message));
        break;
    }
    case 2: {
        auto r = check_attach_mode(args);
        if (r)
            FUZZ_CHECK(requested_mode_name(*r) == args);
        else if (valid_in)
            FUZZ_CHECK(fuzz::dbus_valid_utf8(r.error().message));
        break;
    }
    }
    return 0;
}
