// The daemon binary as a user runs it: unlinkd --foreground [--json].
#include <catch2/catch.hpp>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;
using json = nlohmann::json;

namespace {

// The complete lines of `text` as JSON: the daemon may be in the middle of
// writing the last one (a long line reaches the file in several writes).
std::vector<json> json_lines(const std::string& text)
{
    std::vector<json> out;
    auto end = text.rfind('\n');
    if (end == std::string::npos)
        return out;
    std::istringstream in(text.substr(0, end + 1));
    std::string line;
    while (std::getline(in, line))
        if (!line.empty())
            out.push_back(json::parse(line));
    return out;
}

}  // namespace

TEST_CASE("unlinkd --foreground --json prints every deletion and a final summary", "[cli]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto n : {"one", "two", "three"})
                s.create(n);
            DaemonProcess d({"--foreground", "--json", "--mode=" + std::string(mode_name(mode))});
            REQUIRE(d.wait_for_err("attached in " + std::string(mode_name(mode)) + " mode"));
            pid_t pid = run_child({"ulk-cli"}, [&]() {
                if (chdir(s.dir().c_str()))
                    return 1;
                return unlink("one") || unlink(s.path("two").c_str()) || unlink("./three") ||
                               unlink("missing") != -1
                           ? 2
                           : 0;
            });
            d.wait_for_out("missing", std::chrono::seconds(2));
            REQUIRE(d.stop(SIGTERM) == 0);
            auto lines = json_lines(d.out());
            REQUIRE_FALSE(lines.empty());
            std::vector<json> mine;
            for (const auto& l : lines)
                if (l.contains("pid") && l["pid"] == pid)
                    mine.push_back(l);
            REQUIRE(mine.size() == 4);
            CHECK(mine[0]["path"] == s.path("one"));
            CHECK(mine[0]["path_as_given"] == "one");
            CHECK(mine[1]["path"] == s.path("two"));
            CHECK(mine[2]["path"] == s.path("three"));
            CHECK(mine[3]["path"] == s.path("missing"));
            CHECK(mine[3]["result"] == -ENOENT);
            for (const auto& e : mine) {
                CHECK(e["comm"] == "ulk-cli");
                CHECK(e["mode"] == std::string(mode_name(mode)));
                CHECK(e["op"] == "unlink");
                CHECK(e["uid"] == 0);
                CHECK(e["tid"] == pid);
                CHECK(e["ppid"] == getpid());
                for (auto key : {"time_usec", "gid", "unit"})
                    CHECK(e.contains(key));
            }
            const json& summary = lines.back();
            REQUIRE(summary.contains("totals"));
            CHECK(summary["totals"]["deletes"].get<std::uint64_t>() >= 3);
            bool found = false;
            for (const auto& p : summary["processes"])
                if (p["pid"] == pid) {
                    found = true;
                    CHECK(p["deletes"] == 3);
                    CHECK(p["failures"] == 1);
                    CHECK(p["comm"] == "ulk-cli");
                }
            CHECK(found);
        }
    }
}

TEST_CASE("unlinkd --foreground prints journal-style lines and honours --filter", "[cli]")
{
    Mode mode = test_modes().front();
    Scratch s;
    s.create("kept");
    s.create("dropped");
    DaemonProcess d({"--foreground", "--mode=" + std::string(mode_name(mode)), "--filter=comm=ulk-text"});
    REQUIRE(d.wait_for_err("attached in"));
    CHECK(d.err().find("filters: comm=ulk-text") != std::string::npos);
    pid_t kept = run_child({"ulk-text"}, [&]() { return unlink(s.path("kept").c_str()); });
    run_child({"ulk-other"}, [&]() { return unlink(s.path("dropped").c_str()); });
    std::string want = "ulk-text[" + std::to_string(kept) + "] uid=0 deleted " + s.path("kept") + "\n";
    d.wait_for_out(want, std::chrono::seconds(2));
    REQUIRE(d.stop(SIGINT) == 0);
    CHECK(d.out().find(want) != std::string::npos);
    CHECK(d.out().find("dropped") == std::string::npos);
}

TEST_CASE("SIGUSR1 prints a summary while running", "[cli]")
{
    Mode mode = test_modes().front();
    Scratch s;
    s.create("u1");
    DaemonProcess d({"--foreground", "--json", "--mode=" + std::string(mode_name(mode))});
    REQUIRE(d.wait_for_err("attached in"));
    pid_t pid = run_child({"ulk-usr1"}, [&]() { return unlink(s.path("u1").c_str()); });
    d.wait_for_out("\"ulk-usr1\"", std::chrono::seconds(2));
    kill(d.pid(), SIGUSR1);
    auto has_summary = [&] {
        for (const auto& l : json_lines(d.out()))
            if (l.contains("totals"))
                return true;
        return false;
    };
    poll_until(has_summary, std::chrono::seconds(5));
    bool found = false;
    for (const auto& l : json_lines(d.out()))
        if (l.contains("processes"))
            for (const auto& p : l["processes"])
                found |= p["pid"] == pid && p["deletes"] == 1;
    CHECK(found);
    CHECK(d.stop() == 0);
}

TEST_CASE("bad input: clear message, non-zero exit, nothing attached", "[cli]")
{
    auto bad_filter = DaemonProcess({"--foreground", "--filter=comm=ok", "--filter=size=3"}).finish();
    CHECK(bad_filter.code == 2);
    CHECK_THAT(bad_filter.err, Catch::Contains("\"size=3\""));

    auto bad_mode = DaemonProcess({"--foreground", "--mode=turbo"}).finish();
    CHECK(bad_mode.code == 2);
    CHECK_THAT(bad_mode.err, Catch::Contains("unknown mode \"turbo\""));

    auto not_root = DaemonProcess({"--foreground"}, ProcessOptions::as_uid(65534)).finish();
    CHECK(not_root.code == 4);
    CHECK_THAT(not_root.err, Catch::Contains("must run as root"));

    auto help = DaemonProcess({"--help"}).finish();
    CHECK(help.code == 0);
    CHECK_THAT(help.out, Catch::Contains("--mode=MODE"));
}

TEST_CASE("--list-modes reports what loads, and why the others do not", "[cli]")
{
    auto d = DaemonProcess({"--list-modes", "--json"}).finish();
    REQUIRE(d.code == 0);
    auto lines = json_lines(d.out);
    REQUIRE(lines.size() == 1);
    auto expected = test_modes();
    REQUIRE(lines[0].size() == 3);
    for (const auto& m : lines[0]) {
        auto mode = parse_mode(m["mode"].get<std::string>());
        REQUIRE(mode);
        bool listed = std::find(expected.begin(), expected.end(), *mode) != expected.end();
        if (listed)
            CHECK(m["supported"] == true);
        if (m["supported"] == false)
            CHECK_FALSE(m["reason"].get<std::string>().empty());
    }
}

TEST_CASE("auto picks the first mode that loads and says why the others do not", "[cli]")
{
    // What loads here, as the daemon itself finds out by trying.
    auto probe = DaemonProcess({"--list-modes", "--json"}).finish();
    REQUIRE(probe.code == 0);
    auto table = json_lines(probe.out);
    REQUIRE(table.size() == 1);
    std::optional<Mode> best;
    for (Mode m : all_modes)  // auto's order: fentry, kprobe, tracepoint
        for (const auto& row : table[0])
            if (!best && row["mode"] == std::string(mode_name(m)) && row["supported"] == true)
                best = m;
    REQUIRE(best.has_value());
    for (Mode m : test_modes())  // the modes this environment must have load
        for (const auto& row : table[0])
            if (row["mode"] == std::string(mode_name(m)))
                CHECK(row["supported"] == true);

    DaemonProcess d({"--foreground"});
    REQUIRE(d.wait_for_err("attached in"));
    REQUIRE(d.stop() == 0);
    CHECK_THAT(d.err(), Catch::Contains("attached in " + std::string(mode_name(*best)) + " mode (requested auto)"));
    for (const auto& row : table[0])
        if (row["supported"] == false)  // each unavailable mode is explained, in the daemon's words
            CHECK_THAT(d.err(), Catch::Contains(row["reason"].get<std::string>()));
}

TEST_CASE("without tracefs mounted the daemon mounts it and tracepoints still attach", "[cli]")
{
    // In a private mount namespace, so the host keeps its tracefs.
    auto private_tracefs = ProcessOptions::with_before_exec([]() {
        if (unshare(CLONE_NEWNS) || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))
            _exit(97);
        umount2("/sys/kernel/tracing", MNT_DETACH);  // may not be mounted: fine
        umount2("/sys/kernel/debug/tracing", MNT_DETACH);
    });
    auto d = DaemonProcess({"--list-modes", "--json"}, private_tracefs).finish();
    REQUIRE(d.code == 0);
    CHECK_THAT(d.err, Catch::Contains("mounted tracefs on /sys/kernel/tracing"));
    auto lines = json_lines(d.out);
    REQUIRE(lines.size() == 1);
    bool tracepoint_ok = false;
    for (const auto& m : lines[0])
        tracepoint_ok |= m["mode"] == "tracepoint" && m["supported"] == true;
    CHECK(tracepoint_ok);
}

TEST_CASE("a configuration file named on the command line must exist", "[cli]")
{
    // (Every other configuration error: tests/integration/lifecycle-test.sh.)
    auto d = DaemonProcess({"--foreground", "--config=/nonexistent/unlinkd.json"}).finish();
    CHECK(d.code == 6);
    CHECK_THAT(d.err, Catch::Contains("cannot read the configuration /nonexistent/unlinkd.json"));
}
