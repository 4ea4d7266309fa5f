// Storms: exact totals under load, exactly-once with several attachments,
// and a gap-free mode switch in the middle of a storm.
#include <catch2/catch.hpp>

#include <algorithm>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "kernel/bpf_engine.h"
#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr unsigned storm_deletes = 100000;
constexpr unsigned storm_threads = 4;

// Drains while the storm child runs, then once more; returns the exit code.
int drain_while(EngineUnderTest& t, pid_t pid)
{
    int code = -1;
    t.drain_until([&]() { return reap(pid, code); }, std::chrono::minutes(5));
    t.drain_until([] { return false; }, std::chrono::milliseconds(200));
    return code;
}

// A storm of `n` deletes by `comm` (which the engine's filter selects) must
// add exactly `n` to the totals and to the storm process, and every event
// not delivered must be accounted for as lost.
void check_exact_storm(EngineUnderTest& t, const Scratch& s, const std::string& comm, unsigned n)
{
    auto before = t.engine->totals();
    pid_t pid = start_storm(s.dir(), comm, n, 2);
    REQUIRE(drain_while(t, pid) == 0);
    auto after = t.engine->totals();
    CHECK(after.deletes - before.deletes == n);
    CHECK(after.failures - before.failures == 0);
    CHECK(t.process(pid).deletes == n);
    auto delivered = t.collector.for_pid(pid).size();
    CHECK(delivered <= n);
    CHECK(delivered + (after.lost_events - before.lost_events) >= n);
}

// A maps-only setup for mechanisms below the engine: attachments made and
// dropped by the test itself.
struct BareMaps {
    std::unique_ptr<BpfMaps> maps;
    explicit BareMaps(const std::vector<std::string>& rules)
    {
        auto m = BpfMaps::make(MapSizes{});
        REQUIRE(m.ok());
        maps = std::move(*m);
        unlinkd_config c{};
        REQUIRE(maps->write_config(c).ok());
        auto parsed = parse_filter_rules(rules);
        REQUIRE(parsed.ok());
        REQUIRE(maps->apply_filter(compile_filter(*parsed), 1).ok());
    }
    Totals totals() { return sum_totals(maps->read_totals_per_cpu(), maps->count_processes()); }
};

}  // namespace

TEST_CASE("a multi-threaded storm of 100k deletes is counted exactly", "[storm]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            auto t = start_engine(mode);
            auto before = t->engine->totals();
            auto start = Clock::now();
            pid_t pid = start_storm(s.dir(), "ulk-storm", storm_deletes, storm_threads);
            REQUIRE(drain_while(*t, pid) == 0);
            double secs = std::chrono::duration<double>(Clock::now() - start).count();
            auto after = t->engine->totals();
            auto p = t->process(pid);
            CHECK(p.deletes == storm_deletes);
            CHECK(p.failures == 0);
            auto delivered = t->collector.for_pid(pid).size();
            auto lost = after.lost_events - before.lost_events;
            CHECK(delivered <= storm_deletes);
            CHECK(delivered + lost >= storm_deletes);  // every missing event is accounted for
            CHECK(after.inflight_overflows == before.inflight_overflows);
            std::printf("FIGURE storm mode=%s deletes=%u threads=%u wall=%.3fs events_delivered=%zu "
                        "events_per_sec=%.0f ring_drops=%llu\n",
                        std::string(mode_name(mode)).c_str(), storm_deletes, storm_threads, secs, delivered,
                        delivered / secs, static_cast<unsigned long long>(lost));
        }
    }
}

TEST_CASE("with a comm filter the global totals equal the deletes issued", "[storm]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            auto t = start_engine(mode, {"comm=ulk-exact"});
            auto before = t->engine->totals();
            pid_t pid = start_storm(s.dir(), "ulk-exact", storm_deletes, 2);
            REQUIRE(drain_while(*t, pid) == 0);
            auto after = t->engine->totals();
            CHECK(after.deletes - before.deletes == storm_deletes);
            CHECK(after.failures - before.failures == 0);
        }
    }
}

TEST_CASE("a stream budget streams at most that many events a second and counts the rest exactly", "[storm]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            auto t = start_engine(mode, {"comm=ulk-budget"});
            constexpr std::uint32_t per_sec = 50;
            REQUIRE(t->engine->set_streaming(true, per_sec).ok());
            auto begin = std::chrono::steady_clock::now();
            pid_t pid = start_storm(s.dir(), "ulk-budget", storm_deletes, 2);
            REQUIRE(drain_while(*t, pid) == 0);
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
            t->drain_all();
            auto totals = t->engine->counters();
            auto streamed = t->collector.for_pid(static_cast<std::uint32_t>(pid)).size();
            INFO("streamed " << streamed << " of " << storm_deletes << " in " << secs << " s");
            CHECK(totals.deletes == storm_deletes);  // counts stay exact
            CHECK(totals.events_streamed + totals.events_unstreamed == storm_deletes);
            CHECK(totals.events_streamed == streamed);
            // Budget windows are whole seconds of CLOCK_MONOTONIC; the run
            // touches at most ceil(secs) + 1 of them. A few may pass around a
            // window change (the budget takes no lock): allow one per CPU.
            CHECK(streamed >= per_sec);
            CHECK(streamed <= (static_cast<std::size_t>(secs) + 2) * (per_sec + 4));
        }
    }
}

TEST_CASE("the same mode attached twice counts every deletion once", "[storm][exactly-once]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            auto t = start_engine(mode, {"comm=ulk-twice"});
            auto second = ModeAttachment::make(t->engine->maps(), mode, true, t->engine->live_attachment_ids());
            REQUIRE(second.ok());
            check_exact_storm(*t, s, "ulk-twice", 20000);
        }
    }
}

TEST_CASE("two different modes attached at once count every deletion once", "[multimode]")
{
    auto modes = test_modes();
    REQUIRE(modes.size() >= 1);
    for (size_t i = 0; i < modes.size(); ++i) {
        for (size_t j = i + 1; j < modes.size(); ++j) {
            DYNAMIC_SECTION(mode_name(modes[i]) << "+" << mode_name(modes[j]))
            {
                Scratch s;
                auto t = start_engine(modes[i], {"comm=ulk-pair"});
                auto other = ModeAttachment::make(t->engine->maps(), modes[j], true, t->engine->live_attachment_ids());
                REQUIRE(other.ok());
                check_exact_storm(*t, s, "ulk-pair", 20000);
            }
        }
    }
    if (modes.size() >= 3) {
        SECTION("all three")
        {
            Scratch s;
            auto t = start_engine(modes[0], {"comm=ulk-three"});
            auto live = t->engine->live_attachment_ids();
            auto b = ModeAttachment::make(t->engine->maps(), modes[1], true, live);
            REQUIRE(b.ok());
            live.push_back((*b)->id());
            auto c = ModeAttachment::make(t->engine->maps(), modes[2], true, live);
            REQUIRE(c.ok());
            check_exact_storm(*t, s, "ulk-three", 20000);
        }
    }
}

TEST_CASE("switching attachments in the middle of a storm loses and doubles nothing", "[storm][switch]")
{
    // Cycles through every mode that loads here, the new one attached and
    // the old one drained and detached (HandOver), as often as it can while
    // the storm runs. With one mode, a fresh attachment of it replaces the
    // old one. Never fentry by fentry: replacing a trampoline's programs
    // makes the kernel skip the fexit of every call inside the old image,
    // whoever claimed it; those calls are counted in lost_exits instead.
    auto modes = loadable_modes();
    Scratch s;
    BareMaps bare({"comm=ulk-switch"});
    auto current = ModeAttachment::make(*bare.maps, modes[0], true, {});
    REQUIRE(current.ok());
    std::unique_ptr<ModeAttachment> attached = std::move(*current);
    auto before = bare.totals();
    // Storms back to back until two switches have been made, so the test
    // does not depend on how fast this machine deletes against how fast it
    // loads programs.
    unsigned deletes = storm_deletes;
    pid_t pid = start_storm(s.dir(), "ulk-switch", storm_deletes, 2);
    int code = -1, switches = 0;
    size_t next = 1 % modes.size();
    double worst_ms = 0;
    std::vector<double> attach_and_hand_over_ms;  // a loaded standby's switch
    for (;;) {
        if (reap(pid, code)) {
            REQUIRE(code == 0);
            if (switches >= 2)
                break;
            pid = start_storm(s.dir(), "ulk-switch", storm_deletes, 2);
            deletes += storm_deletes;
        }
        auto t0 = Clock::now();
        auto fresh = ModeAttachment::load(*bare.maps, modes[next], {attached->id()});
        REQUIRE(fresh.ok());
        auto t1 = Clock::now();
        REQUIRE((*fresh)->attach().ok());
        CHECK(hand_over_now(*bare.maps, attached, std::move(*fresh)) == 0);
        auto t2 = Clock::now();
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(t2 - t0).count());
        attach_and_hand_over_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        ++switches;
        next = (next + 1) % modes.size();
    }
    std::sort(attach_and_hand_over_ms.begin(), attach_and_hand_over_ms.end());
    auto after = bare.totals();
    auto counted = after.deletes - before.deletes;
    auto lost = after.lost_exits - before.lost_exits;
    if (modes.size() == 1 && modes[0] == Mode::fentry) {
        CHECK(counted + lost == deletes);
    } else {
        CHECK(counted == deletes);
        CHECK(lost == 0);
    }
    CHECK(after.failures - before.failures == 0);
    std::string names;
    for (Mode m : modes)
        names += std::string(names.empty() ? "" : ",") + std::string(mode_name(m));
    std::printf("FIGURE switch modes=%s switches=%d worst_switch_ms=%.1f standby_switch_ms_median=%.1f "
                "standby_switch_ms_worst=%.1f deletes=%llu lost_exits=%llu\n",
                names.c_str(), switches, worst_ms, attach_and_hand_over_ms[attach_and_hand_over_ms.size() / 2],
                attach_and_hand_over_ms.back(), static_cast<unsigned long long>(counted),
                static_cast<unsigned long long>(lost));
}

TEST_CASE("Engine::set_mode switches modes during a storm with exact totals", "[multimode]")
{
    auto modes = test_modes();
    if (modes.size() < 2) {
        // One mode here: set_mode to the attached mode must be a no-op that
        // keeps counting, and every other mode must be refused with a reason.
        auto t = start_engine(modes[0]);
        auto same = switch_mode(*t->engine, RequestedMode{false, modes[0]});
        REQUIRE(same.ok());
        CHECK(*same == modes[0]);
        for (Mode m : all_modes) {
            if (m == modes[0])
                continue;
            auto r = switch_mode(*t->engine, RequestedMode{false, m});
            if (r.ok()) {
                WARN("mode " << mode_name(m) << " loads here but is not in UNLINKD_TEST_MODES");
                REQUIRE(switch_mode(*t->engine, RequestedMode{false, modes[0]}).ok());
                continue;
            }
            CHECK_FALSE(r.error().message.empty());
            CHECK(t->engine->attached_mode() == modes[0]);
        }
        return;
    }
    Scratch s;
    auto t = start_engine(modes[0], {"comm=ulk-setmode"});
    // As the daemon does once started: every other mode loaded, not attached.
    CHECK(t->engine->prepare_standbys() == modes.size() - 1);
    auto before = t->engine->totals();
    pid_t pid = start_storm(s.dir(), "ulk-setmode", storm_deletes, 2);
    int code = -1;
    size_t i = 0;
    std::vector<double> switch_ms;
    while (!reap(pid, code)) {
        Mode m = modes[++i % modes.size()];
        auto begin = std::chrono::steady_clock::now();
        auto r = switch_mode(*t->engine, RequestedMode{false, m});
        switch_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count());
        INFO(mode_name(m) << ": " << (r.ok() ? "" : r.error().message));
        REQUIRE(r.ok());
        CHECK(t->engine->attached_mode() == m);
        t->engine->drain();
        t->engine->prepare_standbys();  // as the daemon does after a switch
    }
    REQUIRE(code == 0);
    CHECK(t->engine->totals().deletes - before.deletes == storm_deletes);
    CHECK(t->engine->totals().lost_exits == 0);
    CHECK(t->process(pid).deletes == storm_deletes);
    std::sort(switch_ms.begin(), switch_ms.end());
    // A figure for the logs (tests/vm greps FIGURE lines), not an assertion.
    std::printf("FIGURE set_mode under a storm with standbys: %zu switches, median %.1f ms, worst %.1f ms\n",
                switch_ms.size(), switch_ms[switch_ms.size() / 2], switch_ms.back());
}

namespace {

constexpr unsigned mixed_pairs = 20000;  // 40000 deletions, half of them directories

// The process row and the totals of a mixed storm by `pid`: every file and
// every directory counted once, and no result lost.
void check_mixed_totals(const Totals& before, const Totals& after, const ProcessStats& p)
{
    CHECK(after.deletes - before.deletes == 2 * mixed_pairs);
    CHECK(after.failures - before.failures == 0);
    CHECK(after.lost_exits - before.lost_exits == 0);
    CHECK(p.deletes == 2 * mixed_pairs);
    CHECK(p.failures == 0);
}

}  // namespace

TEST_CASE("hand-overs during a mixed rmdir/unlink storm lose and double nothing", "[storm][switch][rmdir]")
{
    // As the switch test above, with do_rmdir beside do_unlinkat: one
    // inflight claim covers both functions, whichever attachment's exit runs.
    auto modes = loadable_modes();
    Scratch s;
    BareMaps bare({"comm=ulk-mixsw"});
    auto current = ModeAttachment::make(*bare.maps, modes[0], true, {});
    REQUIRE(current.ok());
    std::unique_ptr<ModeAttachment> attached = std::move(*current);
    auto before = bare.totals();
    pid_t pid = start_storm(s.dir(), "ulk-mixsw", mixed_pairs, 2, StormOps::unlink_and_rmdir);
    int code = -1, switches = 0;
    size_t next = 1 % modes.size();
    while (!reap(pid, code)) {
        auto fresh = ModeAttachment::make(*bare.maps, modes[next], true, {attached->id()});
        REQUIRE(fresh.ok());
        CHECK(hand_over_now(*bare.maps, attached, std::move(*fresh)) == 0);
        ++switches;
        next = (next + 1) % modes.size();
    }
    REQUIRE(code == 0);
    auto after = bare.totals();
    if (modes.size() == 1 && modes[0] == Mode::fentry) {  // see the switch test above
        CHECK(after.deletes - before.deletes + after.lost_exits - before.lost_exits == 2 * mixed_pairs);
    } else {
        CHECK(after.deletes - before.deletes == 2 * mixed_pairs);
        CHECK(after.lost_exits - before.lost_exits == 0);
    }
    CHECK(after.failures - before.failures == 0);
    CHECK(switches >= 1);
    // The counters a miss would show in, for the logs. Once seen on 6.1
    // fentry, 39999 of 40000 with no lost exit; the likely cause, since
    // mended: the test gave make() no live ids, so under TCG (one id per
    // second) each fresh attachment took the old one's claim slot, and a
    // drain that reads a shared slot can see zero while a call is open.
    std::printf("FIGURE mixed switch storm: %d hand-overs, %u deletions (half rmdir), counted %llu, lost_exits %llu, "
                "inflight_overflows %llu\n",
                switches, 2 * mixed_pairs, static_cast<unsigned long long>(after.deletes - before.deletes),
                static_cast<unsigned long long>(after.lost_exits - before.lost_exits),
                static_cast<unsigned long long>(after.inflight_overflows - before.inflight_overflows));
}

TEST_CASE("Engine::set_mode during a mixed rmdir/unlink storm: exact totals", "[multimode][rmdir]")
{
    auto modes = test_modes();
    Scratch s;
    auto t = start_engine(modes[0], {"comm=ulk-mixmode"});
    t->engine->prepare_standbys();
    auto before = t->engine->totals();
    pid_t pid = start_storm(s.dir(), "ulk-mixmode", mixed_pairs, 2, StormOps::unlink_and_rmdir);
    int code = -1;
    size_t i = 0, switches = 0;
    while (!reap(pid, code)) {
        Mode m = modes[++i % modes.size()];
        auto r = switch_mode(*t->engine, RequestedMode{false, m});
        INFO(mode_name(m) << ": " << (r.ok() ? "" : r.error().message));
        REQUIRE(r.ok());
        CHECK(t->engine->attached_mode() == m);
        t->engine->drain();
        t->engine->prepare_standbys();
        switches += modes.size() > 1;
    }
    REQUIRE(code == 0);
    t->drain_all();  // the storm has exited: every record is written
    check_mixed_totals(before, t->engine->totals(), t->process(pid));
    // Every event delivered carries the op of its call; none is lost
    // without being counted as lost.
    std::size_t dirs = 0, files = 0;
    for (const auto& e : t->collector.for_pid(pid))
        (e.op == "rmdir" ? dirs : files) += 1;
    CHECK(dirs <= mixed_pairs);
    CHECK(files <= mixed_pairs);
    CHECK(dirs + files + (t->engine->totals().lost_events - before.lost_events) >= 2 * mixed_pairs);
    if (modes.size() > 1)
        CHECK(switches >= 1);
    std::printf("FIGURE set_mode under a mixed storm: %zu switches, %zu rmdir and %zu unlink events delivered\n",
                switches, dirs, files);
}
