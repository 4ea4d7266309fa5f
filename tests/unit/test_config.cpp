#include <catch2/catch.hpp>

#include "core/config.h"

using namespace unlinkd;

TEST_CASE("an empty or comment-only configuration means every default", "[config]")
{
    for (const char* text : {"", "// nothing\n", "{}", "/* all defaults */ { }"}) {
        auto c = parse_config(text);
        REQUIRE(c.ok());
        CHECK(*c == Config{});
    }
    CHECK(Config{}.max_journal_per_sec == 200);
    CHECK(Config{}.max_signals_per_sec == 100);
    CHECK(Config{}.recent_events == 1024);
    CHECK(Config{}.max_processes == 16384);
    CHECK(Config{}.ring_buffer_kib == 1024);
    CHECK(Config{}.reader_group == "adm");
    CHECK(Config{}.mode.automatic);
}

TEST_CASE("every key is read, comments are allowed", "[config]")
{
    auto c = parse_config(R"({
        // the mode
        "mode": "kprobe",
        "filters": ["comm=rm", "path!=/tmp"],  /* two rules */
        "max_journal_per_sec": 0, "max_signals_per_sec": 7, "summary_interval_sec": 5,
        "recent_events": 10, "max_processes": 100, "ring_buffer_kib": 256, "reader_group": "wheel"
    })");
    REQUIRE(c.ok());
    CHECK(c->mode == RequestedMode{false, Mode::kprobe});
    CHECK(c->filters == std::vector<std::string>{"comm=rm", "path!=/tmp"});
    CHECK(c->max_journal_per_sec == 0);
    CHECK(c->max_signals_per_sec == 7);
    CHECK(c->summary_interval_sec == 5);
    CHECK(c->recent_events == 10);
    CHECK(c->max_processes == 100);
    CHECK(c->ring_buffer_kib == 256);
    CHECK(c->reader_group == "wheel");
}

TEST_CASE("bad configurations are errors that name the key", "[config]")
{
    struct Case {
        const char* text;
        const char* must_say;
    };
    for (auto [text, must_say] : {
             Case{R"({"mood": "auto"})", "\"mood\": unknown key"},
             Case{R"({"mode": "fexit"})", "\"mode\": unknown mode \"fexit\""},
             Case{R"({"mode": 1})", "\"mode\": must be a string"},
             Case{R"({"filters": "comm=rm"})", "\"filters\": must be a list"},
             Case{R"({"filters": ["uid=nobody"]})", "\"filters\""},
             Case{R"({"filters": [1]})", "\"filters\": must be a list of strings"},
             Case{R"({"max_journal_per_sec": -1})", "\"max_journal_per_sec\""},
             Case{R"({"max_signals_per_sec": 2.5})", "\"max_signals_per_sec\""},
             Case{R"({"summary_interval_sec": 0})", "\"summary_interval_sec\": 0 is out of range"},
             Case{R"({"max_processes": 99999999999})", "\"max_processes\""},
             Case{R"({"ring_buffer_kib": "1M"})", "\"ring_buffer_kib\""},
             Case{R"({"reader_group": ""})", "\"reader_group\""},
             Case{R"({"mode": "auto",})", "not valid JSON"},
             Case{R"([1, 2])", "must be a JSON object"},
             // The parser throws out_of_range, not parse_error, for this (tests/fuzz).
             Case{R"({"max_processes": 1e3006})", "not valid JSON"},
         }) {
        auto c = parse_config(text);
        INFO(text);
        REQUIRE_FALSE(c.ok());
        CHECK_THAT(c.error().message, Catch::Contains(must_say));
    }
    auto bad_rule = parse_config(R"({"filters": ["comm=rm", "uid=nobody"]})");
    REQUIRE_FALSE(bad_rule.ok());
    CHECK_THAT(bad_rule.error().message, Catch::Contains("uid=nobody"));
}

TEST_CASE("the runtime state round-trips", "[config]")
{
    RuntimeState s;
    s.mode = RequestedMode{false, Mode::tracepoint};
    s.filters = std::vector<std::string>{"uid=1000", "comm!=make"};
    s.saved_usec = 1700000000123456;
    auto back = parse_state(serialize_state(s));
    REQUIRE(back.ok());
    CHECK(*back == s);
    CHECK_FALSE(parse_state("{\"filters\": [\"bogus\"]}").ok());
    CHECK_FALSE(parse_state("not json").ok());
    // Found by tests/fuzz: a float out of int64's range was converted anyway.
    CHECK_FALSE(parse_state(R"({"saved_usec": 1e300})").ok());
    CHECK_FALSE(parse_state(R"({"saved_usec": 1.5})").ok());
    CHECK_FALSE(parse_state(R"({"saved_usec": 18446744073709551615})").ok());
    CHECK(parse_state(R"({"saved_usec": -5})")->saved_usec == -5);
}

TEST_CASE("saved runtime changes win until the file changes; the command line wins over both", "[config]")
{
    Config file;
    file.mode = RequestedMode{false, Mode::fentry};
    file.filters = {"comm=from-file"};
    RuntimeState state;
    state.mode = RequestedMode{false, Mode::kprobe};
    state.filters = std::vector<std::string>{"comm=from-state"};
    state.saved_usec = 2000;

    auto e = choose_effective(file, 1000, state, std::nullopt, std::nullopt);  // file older
    CHECK(e.mode == RequestedMode{false, Mode::kprobe});
    CHECK(e.filters == std::vector<std::string>{"comm=from-state"});

    e = choose_effective(file, 3000, state, std::nullopt, std::nullopt);  // file edited since
    CHECK(e.mode == RequestedMode{false, Mode::fentry});
    CHECK(e.filters == std::vector<std::string>{"comm=from-file"});

    e = choose_effective(file, std::nullopt, state, std::nullopt, std::nullopt);  // no file
    CHECK(e.filters == std::vector<std::string>{"comm=from-state"});

    e = choose_effective(file, 1000, std::nullopt, std::nullopt, std::nullopt);  // nothing saved
    CHECK(e.filters == std::vector<std::string>{"comm=from-file"});

    RuntimeState only_filters;
    only_filters.filters = std::vector<std::string>{};
    only_filters.saved_usec = 2000;
    e = choose_effective(file, 1000, only_filters, std::nullopt, std::nullopt);
    CHECK(e.filters.empty());  // "no filter" saved at run time is a choice too
    CHECK(e.mode == RequestedMode{false, Mode::fentry});

    e = choose_effective(file, 1000, state, RequestedMode{}, std::vector<std::string>{"pid=1"});
    CHECK(e.mode.automatic);
    CHECK(e.filters == std::vector<std::string>{"pid=1"});
    CHECK(std::string(e.filters_from) == "command line");
}

TEST_CASE("a D-Bus change is saved with the other field kept only while the saved state is in force", "[config]")
{
    RuntimeState saved;
    saved.mode = RequestedMode{false, Mode::kprobe};
    saved.saved_usec = 2000;
    std::vector<std::string> rules{"uid=1000"};

    // The file is older than the saved state: the saved mode stays beside the new filters.
    auto s = record_runtime_change(saved, 1000, std::nullopt, rules, 5000);
    CHECK(s.mode == RequestedMode{false, Mode::kprobe});
    CHECK(s.filters == rules);
    CHECK(s.saved_usec == 5000);

    // The file changed after the save: the stale mode is not carried into the new state.
    s = record_runtime_change(saved, 3000, std::nullopt, rules, 5000);
    CHECK_FALSE(s.mode.has_value());
    CHECK(s.filters == rules);

    // Nothing saved yet: only the changed field.
    s = record_runtime_change(std::nullopt, 3000, RequestedMode{}, std::nullopt, 5000);
    CHECK(s.mode == RequestedMode{});
    CHECK_FALSE(s.filters.has_value());

    CHECK(state_in_force(std::nullopt, saved));
    CHECK(state_in_force(2000, saved));
    CHECK_FALSE(state_in_force(2001, saved));
}

TEST_CASE("the kernel streams what the consumers can use, no more", "[config]")
{
    Config c;  // journal 200, signals 100
    CHECK(stream_budget(c, false) == StreamBudget{true, 200});
    CHECK(stream_budget(c, true) == StreamBudget{true, 0});  // the console prints everything
    c.max_journal_per_sec = 0;
    CHECK(stream_budget(c, false) == StreamBudget{true, 100});
    c.max_signals_per_sec = 0;
    CHECK(stream_budget(c, false) == StreamBudget{true, 1024});  // recent events only
    c.recent_events = 0;
    CHECK(stream_budget(c, false) == StreamBudget{false, 0});  // count only
}
