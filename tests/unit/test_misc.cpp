#include <catch2/catch.hpp>

#include <cerrno>
#include <climits>
#include <cstdint>

#include "core/bus_args.h"
#include "core/cli.h"
#include "core/format.h"
#include "core/modes.h"

using namespace unlinkd;

TEST_CASE("command line", "[cli]")
{
    auto o = parse_command_line({"--foreground", "--json", "--mode=kprobe", "--filter=uid=0", "--filter", "comm=rm"});
    REQUIRE(o.ok());
    CHECK(o->foreground);
    CHECK(o->json);
    REQUIRE(o->mode.has_value());
    CHECK(*o->mode == RequestedMode{false, Mode::kprobe});
    CHECK(o->filters == std::vector<std::string>{"uid=0", "comm=rm"});

    auto a = parse_command_line({"--mode", "auto"});
    REQUIRE(a.ok());
    CHECK(a->mode->automatic);

    auto bad = parse_command_line({"--mode=turbo"});
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Contains("unknown mode \"turbo\""));
    CHECK_FALSE(parse_command_line({"--bogus"}).ok());
    CHECK_FALSE(parse_command_line({"--filter"}).ok());
    CHECK_FALSE(parse_command_line({"--config="}).ok());
}

TEST_CASE("mode names round-trip and auto resolves in preference order", "[modes]")
{
    for (Mode m : all_modes)
        CHECK(parse_mode(mode_name(m)) == m);
    CHECK_FALSE(parse_mode("auto").has_value());
    CHECK(parse_requested_mode("auto")->automatic);

    CHECK(candidate_modes(RequestedMode{}) == std::vector<Mode>{Mode::fentry, Mode::kprobe, Mode::tracepoint});
    CHECK(candidate_modes(RequestedMode{false, Mode::kprobe}) == std::vector<Mode>{Mode::kprobe});
}

TEST_CASE("unavailable modes are explained in words a user can act on", "[modes]")
{
    auto fentry = explain_unavailable(Mode::fentry, ProbeStage::load, EPERM);
    CHECK_THAT(fentry, Catch::Contains("EPERM") && Catch::Contains("lockdown"));
    auto kprobe = explain_unavailable(Mode::kprobe, ProbeStage::attach, ENOENT);
    CHECK_THAT(kprobe, Catch::Contains("CONFIG_KPROBES") && Catch::Contains("ENOENT"));
    auto tp = explain_unavailable(Mode::tracepoint, ProbeStage::attach, ENOENT);
    CHECK_THAT(tp, Catch::Contains("mount -t tracefs"));
    CHECK_THAT(std::string(mode_description(Mode::tracepoint)), Catch::Contains("io_uring"));
}

TEST_CASE("errno names", "[format]")
{
    CHECK(errno_name(-ENOENT) == "ENOENT");
    CHECK(errno_name(-EACCES) == "EACCES");
    CHECK(errno_name(-EISDIR) == "EISDIR");
    CHECK(errno_name(0) == "ok");
    CHECK(errno_name(-4095) == "errno 4095");
    CHECK(errno_name(INT_MIN) == "errno 2147483648");  // its negation overflowed an int (tests/fuzz)
}

TEST_CASE("the D-Bus methods' argument checks", "[bus_args]")
{
    CHECK_FALSE(check_count(0).ok());
    CHECK(check_count(0).error().message == "count must be 1 or more");
    CHECK(check_count(1).ok());
    CHECK(check_count(UINT32_MAX).ok());
    auto rules = check_filter_rules({"uid=1000", "comm!=make"});
    REQUIRE(rules.ok());
    CHECK(rules->size() == 2);
    auto bad = check_filter_rules({"uid=1000", "colour=red"});
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Contains("colour=red"));
    CHECK(check_attach_mode("auto")->automatic);
    CHECK(check_attach_mode("kprobe")->mode == Mode::kprobe);
    REQUIRE_FALSE(check_attach_mode("fexit").ok());
    CHECK(check_attach_mode("fexit").error().message ==
          "unknown attach mode \"fexit\": use auto, fentry, kprobe or tracepoint");
}
