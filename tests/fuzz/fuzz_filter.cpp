// The filter rule parser and compiler on any list of rules (one per line):
// no crash; an accepted rule is canonical (its text() parses back to the
// same rule); the compiled maps hold one entry per distinct (field, value)
// and stay within the kernel's limits; a refusal of D-Bus-valid text is
// D-Bus-valid text (it becomes an InvalidArgs message).
#include <cstring>

#include "core/filter.h"
#include "fuzz.h"

using namespace unlinkd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    auto text = fuzz::as_text(data, size);
    auto rules = fuzz::lines(text);
    auto parsed = parse_filter_rules(rules);
    if (!parsed) {
        FUZZ_CHECK(!parsed.error().message.empty());
        if (fuzz::dbus_valid_utf8(text))
            FUZZ_CHECK(fuzz::dbus_valid_utf8(parsed.error().message));
        return 0;
    }
    FUZZ_CHECK(parsed->size() <= rules.size());
    FUZZ_CHECK(parsed->size() <= UNLINKD_MAX_FILTER_RULES);
    std::vector<std::string> canonical;
    for (const auto& r : *parsed) {
        auto again = parse_filter_rules({r.text()});
        FUZZ_CHECK(again && again->size() == 1 && again->front() == r);
        canonical.push_back(r.text());
    }
    auto reparsed = parse_filter_rules(canonical);
    FUZZ_CHECK(reparsed && *reparsed == *parsed);

    auto compiled = compile_filter(*parsed);
    FUZZ_CHECK(compiled.entries.size() <= parsed->size());
    for (std::size_t i = 0; i < compiled.entries.size(); ++i) {
        const auto& e = compiled.entries[i];
        FUZZ_CHECK(e.action != 0);
        for (std::size_t j = i + 1; j < compiled.entries.size(); ++j)
            FUZZ_CHECK(e.field != compiled.entries[j].field ||
                       std::memcmp(e.value.data(), compiled.entries[j].value.data(), e.value.size()) != 0);
    }

    // The user-space mirror of the kernel's decision, on subjects built from
    // the rules' own values, so that matches are actually reached.
    for (const auto& r : *parsed) {
        FilterSubject s;
        switch (r.field) {
        case FilterField::pid: s.pid = static_cast<std::uint32_t>(std::stoul(r.value)); break;
        case FilterField::uid: s.uid = static_cast<std::uint32_t>(std::stoul(r.value)); break;
        case FilterField::comm: s.comm = r.value; break;
        case FilterField::unit: s.cgroup_path = "/system.slice/" + r.value; break;
        case FilterField::path: s.path = r.value; break;
        case FilterField::loginuid: s.loginuid = static_cast<std::uint32_t>(std::stoul(r.value)); break;
        case FilterField::op: s.op = r.value; break;
        }
        (void)filter_matches(*parsed, s);
        // A rule set holding only this one rule: an include matches its own
        // subject, an exclude drops it; a path rule covers what is below it.
        FUZZ_CHECK(filter_matches({r}, s) == !r.exclude);
        if (r.field == FilterField::path) {
            s.path = r.value == "/" ? "/x" : r.value + "/x";
            FUZZ_CHECK(filter_matches({r}, s) == !r.exclude);
        }
    }
    return 0;
}
