// The configuration parser and the saved-state parser on any text: no
// crash, values within their documented bounds, errors naming a key or the
// syntax, and the saved state written back reads the same.
#include "core/config.h"
#include "core/filter.h"
#include "fuzz.h"

using namespace unlinkd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    auto text = fuzz::as_text(data, size);
    if (auto c = parse_config(text)) {
        FUZZ_CHECK(c->max_journal_per_sec <= max_rate_per_sec);
        FUZZ_CHECK(c->max_signals_per_sec <= max_rate_per_sec);
        FUZZ_CHECK(c->summary_interval_sec >= 1 && c->summary_interval_sec <= max_summary_interval_sec);
        FUZZ_CHECK(c->recent_events <= max_recent_events);
        FUZZ_CHECK(c->max_processes >= 1 && c->max_processes <= max_max_processes);
        FUZZ_CHECK(c->ring_buffer_kib >= 4 && c->ring_buffer_kib <= max_ring_buffer_kib);
        FUZZ_CHECK(!c->reader_group.empty());
        FUZZ_CHECK(parse_filter_rules(c->filters).ok());
        (void)stream_budget(*c, false);
    } else {
        FUZZ_CHECK(!c.error().message.empty());
    }

    if (auto s = parse_state(text)) {
        auto again = parse_state(serialize_state(*s));
        FUZZ_CHECK(again && *again == *s);
        (void)state_in_force(0, *s);
    }
    return 0;
}
