// The D-Bus methods' argument checks (core/bus_args.h) on any arguments.
// The first byte picks the method, the rest are its arguments: a count
// (4 bytes, little-endian; then what GetTopProcesses and GetRecentEvents do
// with it, on lists built from the remaining bytes), rules (one per line) or
// a mode name. No crash;
// a refusal's message, sent as the InvalidArgs text, is valid D-Bus UTF-8
// whenever the arguments were (the bus only delivers valid strings).
#include <algorithm>
#include <cstring>

#include "core/aggregate.h"
#include "core/bus_args.h"
#include "core/recent_events.h"
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
        if (!r) {
            FUZZ_CHECK(fuzz::dbus_valid_utf8(r.error().message));
            break;
        }
        // A process and an event per remaining byte, the byte as their uid
        // (half of them visible) and deletes.
        std::vector<ProcessStats> processes;
        RecentEvents recent(256);
        std::size_t visible = 0;
        for (std::size_t k = sizeof(count); k < args.size(); ++k) {
            auto b = static_cast<std::uint8_t>(args[k]);
            ProcessStats p;
            p.pid = static_cast<std::uint32_t>(k);
            p.uid = b;
            p.deletes = b;
            processes.push_back(p);
            Event e;
            e.uid = b;
            recent.add(e);
        }
        for (std::size_t k = args.size() > 256 + sizeof(count) ? args.size() - 256 : sizeof(count); k < args.size(); ++k)
            visible += static_cast<std::uint8_t>(args[k]) % 2;
        auto top = top_processes(processes, count);
        FUZZ_CHECK(top.size() == std::min<std::size_t>(count, processes.size()));
        for (std::size_t k = 1; k < top.size(); ++k)
            FUZZ_CHECK(top[k - 1].deletes >= top[k].deletes);
        auto events = recent.newest(count, [](const Event& e) { return e.uid % 2 == 1; });
        FUZZ_CHECK(events.size() == std::min<std::size_t>(count, visible));
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
