// The ring buffer record decoder and joiner (core/event.cpp) on arbitrary
// records, and what each joined event becomes on every text output. The
// kernel side is trusted, but a version skew (a record of another layout, a
// mode or kind this build does not know) or a bug must not crash the daemon.
//
// Input: 8 bytes of CLOCK_REALTIME - CLOCK_MONOTONIC offset, then records,
// each a 2-byte little-endian size followed by that many bytes (fewer at the
// end of the input: the rest).
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/escape.h"
#include "core/event.h"
#include "core/format.h"
#include "core/journal_fields.h"
#include "fuzz.h"

using namespace unlinkd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::int64_t offset = 0;
    std::memcpy(&offset, data, std::min(size, sizeof(offset)));
    std::size_t i = std::min(size, sizeof(offset));

    EventJoiner joiner;
    std::uint64_t records = 0, events = 0;
    while (i < size) {
        std::size_t len = data[i];
        if (i + 1 < size)
            len |= std::size_t{data[i + 1]} << 8;
        i = std::min(size, i + 2);
        len = std::min(len, size - i);
        // A copy of exactly the record's size, as the ring buffer hands it
        // over: reading past it is then an ASan report, not a silent read.
        std::vector<std::uint8_t> record(data + i, data + i + len);
        i += len;
        ++records;
        auto e = joiner.on_record(record.data(), record.size(), offset);
        if (!e)
            continue;
        ++events;
        FUZZ_CHECK(e->comm.size() <= UNLINKD_COMM_LEN);  // 16 when a record lacks the NUL
        FUZZ_CHECK(static_cast<unsigned>(e->mode) < UNLINKD_MODE_COUNT);
        FUZZ_CHECK(!e->path_truncated || e->path.empty());
        std::string message = journal_message(*e);
        FUZZ_CHECK(fuzz::dbus_valid_utf8(message));
        FUZZ_CHECK(message.find('\n') == std::string::npos);
        std::string json = event_json(*e).dump();  // throws on invalid UTF-8
        FUZZ_CHECK(json.find('\n') == std::string::npos);
        for (const auto& field : deletion_fields(*e))
            FUZZ_CHECK(field.find('=') != std::string::npos);
        // The D-Bus row's strings.
        for (const auto& s : {e->comm, e->display_path(), e->unit})
            FUZZ_CHECK(fuzz::dbus_valid_utf8(escape_name(s)));
    }
    FUZZ_CHECK(joiner.malformed() + joiner.unmatched_exits() + joiner.pending() + events <= records);
    return 0;
}
