// Filters run in the kernel before counting: a filtered-out deletion is in
// no count and no event. One test per field, include and exclude, combined,
// a bad rule, and a filter replaced while a storm runs.
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;

namespace {

// Deletes each of `names` (relative to the scratch dir); returns 0 when all succeeded.
std::function<int()> deleter(const Scratch& s, std::vector<std::string> names)
{
    return [&s, names]() {
        for (const auto& n : names)
            if (unlink(s.path(n).c_str()))
                return 1;
        return 0;
    };
}

void settle(EngineUnderTest& t) { t.drain_until([] { return false; }, std::chrono::milliseconds(200)); }

}  // namespace

TEST_CASE("comm include and exclude", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto n : {"a1", "a2", "b1", "b2", "b3"})
                s.create(n);
            auto t = start_engine(mode, {"comm=ulk-fa"});
            pid_t a = run_child({"ulk-fa"}, deleter(s, {"a1", "a2"}));
            pid_t b = run_child({"ulk-fb"}, deleter(s, {"b1", "b2", "b3"}));
            settle(*t);
            CHECK(t->process(a).deletes == 2);
            CHECK(t->processes_of(b).empty());
            CHECK(t->collector.for_pid(a).size() == 2);
            CHECK(t->collector.for_pid(b).empty());

            for (auto n : {"a1", "b1"})
                s.create(n);
            REQUIRE(t->engine->set_filters({"comm!=ulk-fa"}).ok());
            pid_t a2 = run_child({"ulk-fa"}, deleter(s, {"a1"}));
            pid_t b2 = run_child({"ulk-fb"}, deleter(s, {"b1"}));
            settle(*t);
            CHECK(t->processes_of(a2).empty());
            CHECK(t->process(b2).deletes == 1);
        }
    }
}

TEST_CASE("uid include and exclude", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(chmod(s.dir().c_str(), 01777) == 0);
            for (auto n : {"n1", "n2", "r1"})
                s.create(n, 0666);
            REQUIRE(chown(s.path("n1").c_str(), 65534, 65534) == 0);
            REQUIRE(chown(s.path("n2").c_str(), 65534, 65534) == 0);
            auto t = start_engine(mode, {"uid=65534"});
            pid_t nobody = run_child({"ulk-uid", 65534, 65534}, deleter(s, {"n1", "n2"}));
            pid_t root = run_child({"ulk-uid"}, deleter(s, {"r1"}));
            settle(*t);
            CHECK(t->process(nobody).deletes == 2);
            CHECK(t->process(nobody).uid == 65534);
            CHECK(t->processes_of(root).empty());

            s.create("r2");
            s.create("n3", 0666);
            REQUIRE(chown(s.path("n3").c_str(), 65534, 65534) == 0);
            REQUIRE(t->engine->set_filters({"uid!=65534", "comm=ulk-uid"}).ok());
            pid_t nobody2 = run_child({"ulk-uid", 65534, 65534}, deleter(s, {"n3"}));
            pid_t root2 = run_child({"ulk-uid"}, deleter(s, {"r2"}));
            settle(*t);
            CHECK(t->processes_of(nobody2).empty());
            CHECK(t->process(root2).deletes == 1);
        }
    }
}

TEST_CASE("op include and exclude: files or directories", "[filters][rmdir]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto d : {"d1", "d2", "d3"})
                REQUIRE(mkdir(s.path(d).c_str(), 0755) == 0);
            for (auto f : {"f1", "f2", "f3"})
                s.create(f);
            auto both = [&](const char* dir, const char* file) {
                return [&s, dir, file]() {
                    // The failed rmdir (ENOENT) is an rmdir too: the op filter counts its failure.
                    if (rmdir(s.path(dir).c_str()) || unlink(s.path(file).c_str()) ||
                        rmdir(s.path("missing").c_str()) != -1)
                        return 1;
                    return 0;
                };
            };
            auto t = start_engine(mode, {"op=rmdir", "comm=ulk-op"});
            auto before = t->engine->counters();
            pid_t a = run_child({"ulk-op"}, both("d1", "f1"));
            settle(*t);
            auto after = t->engine->counters();
            CHECK(after.deletes - before.deletes == 1);  // only d1: f1 was filtered in the kernel
            CHECK(after.failures - before.failures == 1);
            CHECK(t->process(a).deletes == 1);
            CHECK(t->process(a).failures == 1);
            auto ev = t->collector.for_pid(a);
            REQUIRE(ev.size() == 2);
            CHECK(ev[0].op == "rmdir");
            CHECK(ev[0].path == s.path("d1"));
            CHECK(ev[1].op == "rmdir");
            CHECK(ev[1].result == -ENOENT);

            REQUIRE(t->engine->set_filters({"op!=rmdir", "comm=ulk-op"}).ok());
            before = t->engine->counters();
            pid_t b = run_child({"ulk-op"}, both("d2", "f2"));
            settle(*t);
            after = t->engine->counters();
            CHECK(after.deletes - before.deletes == 1);  // only f2
            CHECK(after.failures - before.failures == 0);
            CHECK(t->process(b).deletes == 1);
            ev = t->collector.for_pid(b);
            REQUIRE(ev.size() == 1);
            CHECK(ev[0].op == "unlink");
            CHECK(ev[0].path == s.path("f2"));

            REQUIRE(t->engine->set_filters({"op=unlink", "op=rmdir", "comm=ulk-op"}).ok());
            pid_t c = run_child({"ulk-op"}, both("d3", "f3"));
            settle(*t);
            CHECK(t->process(c).deletes == 2);
            CHECK(t->process(c).failures == 1);
        }
    }
}

TEST_CASE("loginuid include and exclude: who logged in, whatever the uid", "[filters][loginuid]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto n : {"a1", "a2", "b1", "a3", "b2"})
                s.create(n);
            auto t = start_engine(mode, {"loginuid=4243"});
            pid_t a = run_child({"ulk-auid", 0, 0, {}, 4243}, deleter(s, {"a1", "a2"}));
            pid_t b = run_child({"ulk-auid", 0, 0, {}, 4244}, deleter(s, {"b1"}));
            settle(*t);
            CHECK(t->process(a).deletes == 2);
            CHECK(t->process(a).loginuid == 4243);
            CHECK(t->processes_of(b).empty());
            CHECK(t->collector.for_pid(a).size() == 2);
            CHECK(t->collector.for_pid(b).empty());

            REQUIRE(t->engine->set_filters({"loginuid!=4243", "comm=ulk-auid"}).ok());
            pid_t a2 = run_child({"ulk-auid", 0, 0, {}, 4243}, deleter(s, {"a3"}));
            pid_t b2 = run_child({"ulk-auid", 0, 0, {}, 4244}, deleter(s, {"b2"}));
            settle(*t);
            CHECK(t->processes_of(a2).empty());
            CHECK(t->process(b2).deletes == 1);
            CHECK(t->process(b2).loginuid == 4244);
            auto ev = t->collector.for_pid(b2);
            REQUIRE(ev.size() == 1);
            CHECK(ev[0].loginuid == 4244);
        }
    }
}

TEST_CASE("pid include and exclude (pids as the daemon sees them)", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto n : {"p1", "p2", "q1"})
                s.create(n);
            auto t = start_engine(mode);
            // The children wait for a byte on a pipe, so the filter can name them first.
            int go[2];
            REQUIRE(pipe(go) == 0);
            auto waiting = [&](std::vector<std::string> names) {
                return [&s, names, fd = go[0]]() {
                    char c;
                    if (read(fd, &c, 1) != 1)
                        return 9;
                    for (const auto& n : names)
                        if (unlink(s.path(n).c_str()))
                            return 1;
                    return 0;
                };
            };
            pid_t p = spawn({"ulk-pid"}, waiting({"p1", "p2"}));
            pid_t q = spawn({"ulk-pid"}, waiting({"q1"}));
            REQUIRE(t->engine->set_filters({"pid=" + std::to_string(p)}).ok());
            // What other processes on this machine deleted before the
            // filter was in force is not this test's.
            t->drain_all();
            t->collector.events.clear();
            REQUIRE(write(go[1], "xx", 2) == 2);
            REQUIRE(wait_child(p) == 0);
            REQUIRE(wait_child(q) == 0);
            settle(*t);
            CHECK(t->process(p).deletes == 2);
            CHECK(t->processes_of(q).empty());
            for (auto e : t->collector.events)
                CHECK(e.pid == static_cast<std::uint32_t>(p));

            s.create("p3");
            s.create("q2");
            pid_t p2 = spawn({"ulk-pid2"}, waiting({"p3"}));
            pid_t q2 = spawn({"ulk-pid2"}, waiting({"q2"}));
            REQUIRE(t->engine->set_filters({"pid!=" + std::to_string(p2), "comm=ulk-pid2"}).ok());
            REQUIRE(write(go[1], "xx", 2) == 2);
            REQUIRE(wait_child(p2) == 0);
            REQUIRE(wait_child(q2) == 0);
            settle(*t);
            CHECK(t->processes_of(p2).empty());
            CHECK(t->process(q2).deletes == 1);
            close(go[0]);
            close(go[1]);
        }
    }
}

TEST_CASE("path filters match whole components, in the kernel", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto d : {"keep", "keep/sub", "keepnot", "other"})
                REQUIRE(mkdir(s.path(d).c_str(), 0755) == 0);
            for (auto f : {"keep/a", "keep/sub/b", "keepnot/c", "other/d"})
                s.create(f);
            auto t = start_engine(mode, {"path=" + s.path("keep")});
            pid_t pid = run_child({"ulk-path"}, [&]() {
                // Relative and dotted names must be resolved before matching.
                if (chdir(s.path("other").c_str()))
                    return 1;
                return unlink("../keep/a") || unlink(s.path("keep/sub/b").c_str()) ||
                               unlink("../keepnot/c") || unlink("d")
                           ? 2
                           : 0;
            });
            settle(*t);
            CHECK(t->process(pid).deletes == 2);
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == 2);
            CHECK(ev[0].path == s.path("keep/a"));
            CHECK(ev[1].path == s.path("keep/sub/b"));

            for (auto f : {"keep/a", "keep/sub/b"})
                s.create(f);
            REQUIRE(t->engine->set_filters({"path=" + s.path("keep"), "path!=" + s.path("keep/sub")}).ok());
            pid_t pid2 = run_child({"ulk-path2"}, deleter(s, {"keep/a", "keep/sub/b"}));
            settle(*t);
            CHECK(t->process(pid2).deletes == 1);
            auto ev2 = t->collector.for_pid(pid2);
            REQUIRE(ev2.size() == 1);
            CHECK(ev2[0].path == s.path("keep/a"));
        }
    }
}

TEST_CASE("unit filters match the cgroup a process runs in", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            std::string unit = "ulk-test-" + std::to_string(getpid()) + ".scope";
            std::string cgroup = cgroup2_root() + "/" + unit;
            REQUIRE((mkdir(cgroup.c_str(), 0755) == 0 || errno == EEXIST));
            for (auto n : {"in1", "in2", "out1"})
                s.create(n);
            auto t = start_engine(mode, {"unit=" + unit});
            pid_t inside = run_child({"ulk-unit", 0, 0, cgroup}, deleter(s, {"in1", "in2"}));
            pid_t outside = run_child({"ulk-unit"}, deleter(s, {"out1"}));
            settle(*t);
            CHECK(t->process(inside).deletes == 2);
            CHECK(t->process(inside).unit == unit);
            CHECK(t->processes_of(outside).empty());
            auto ev = t->collector.for_pid(inside);
            REQUIRE(ev.size() == 2);
            CHECK(ev[0].unit == unit);
            CHECK(ev[0].cgroup_path == "/" + unit);

            s.create("in3");
            s.create("out2");
            REQUIRE(t->engine->set_filters({"unit!=" + unit, "comm=ulk-unit2"}).ok());
            pid_t inside2 = run_child({"ulk-unit2", 0, 0, cgroup}, deleter(s, {"in3"}));
            pid_t outside2 = run_child({"ulk-unit2"}, deleter(s, {"out2"}));
            settle(*t);
            CHECK(t->processes_of(inside2).empty());
            CHECK(t->process(outside2).deletes == 1);
            rmdir(cgroup.c_str());
        }
    }
}

TEST_CASE("fields combine: includes OR-ed per field, fields AND-ed, excludes win", "[filters]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(chmod(s.dir().c_str(), 01777) == 0);
            for (auto n : {"c1", "c2", "c3", "c4"})
                s.create(n, 0666);
            REQUIRE(chown(s.path("c4").c_str(), 65534, 65534) == 0);
            auto t = start_engine(mode, {"comm=ulk-c1", "comm=ulk-c2", "uid=0", "path!=" + s.path("c3")});
            pid_t c1 = run_child({"ulk-c1"}, deleter(s, {"c1"}));   // comm ok, uid ok
            pid_t c2 = run_child({"ulk-c2"}, deleter(s, {"c2"}));   // comm ok, uid ok
            pid_t c3 = run_child({"ulk-c2"}, deleter(s, {"c3"}));   // excluded path
            pid_t c4 = run_child({"ulk-c1", 65534, 65534}, deleter(s, {"c4"}));  // uid fails
            settle(*t);
            CHECK(t->process(c1).deletes == 1);
            CHECK(t->process(c2).deletes == 1);
            CHECK(t->processes_of(c3).empty());
            CHECK(t->processes_of(c4).empty());
        }
    }
}

TEST_CASE("a bad rule is rejected by name and the filter in force stays", "[filters]")
{
    Mode mode = test_modes().front();
    Scratch s;
    for (auto n : {"x1", "y1"})
        s.create(n);
    auto t = start_engine(mode, {"comm=ulk-keep"});
    auto r = t->engine->set_filters({"comm=ulk-other", "colour=red"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK_THAT(r.error().message, Catch::Contains("\"colour=red\""));
    CHECK(t->engine->filters() == std::vector<std::string>{"comm=ulk-keep"});
    pid_t keep = run_child({"ulk-keep"}, deleter(s, {"x1"}));
    pid_t other = run_child({"ulk-other"}, deleter(s, {"y1"}));
    settle(*t);
    CHECK(t->process(keep).deletes == 1);
    CHECK(t->processes_of(other).empty());

    EngineOptions bad;
    bad.mode = RequestedMode{false, mode};
    bad.filters = {"uid=nobody"};
    auto bad_start = Engine::make(bad);
    REQUIRE_FALSE(bad_start.ok());
    CHECK_THAT(bad_start.error().message, Catch::Contains("\"uid=nobody\""));
}

TEST_CASE("filters replaced while a storm runs: exact under an equivalent filter, final filter in force",
          "[filters][storm]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            // Two spellings of the same filter alternate as fast as the
            // daemon can install them: a deletion must never be lost or
            // doubled in the flip between generations.
            const std::vector<std::string> spelling_a{"comm=ulk-flip", "uid=0"};
            const std::vector<std::string> spelling_b{"uid=0", "comm=ulk-flip", "path!=/nonexistent"};
            auto t = start_engine(mode, spelling_a);
            auto before = t->engine->totals();
            constexpr unsigned n = 50000;
            pid_t pid = start_storm(s.dir(), "ulk-flip", n, 2);
            int code = -1, flips = 0;
            while (!reap(pid, code)) {
                REQUIRE(t->engine->set_filters(flips % 2 ? spelling_a : spelling_b).ok());
                ++flips;
                t->engine->drain();
            }
            REQUIRE(code == 0);
            auto after = t->engine->totals();
            CHECK(after.deletes - before.deletes == n);
            CHECK(t->process(pid).deletes == n);
            CHECK(flips > 10);
            std::printf("FIGURE filter-flips mode=%s flips=%d deletes=%u\n", std::string(mode_name(mode)).c_str(),
                        flips, n);

            // Then a filter that excludes the storm's comm: nothing of it counts.
            REQUIRE(t->engine->set_filters({"comm=ulk-final"}).ok());
            auto mid = t->engine->totals();
            pid_t excluded = start_storm(s.dir(), "ulk-flip", 1000, 1);
            REQUIRE(wait_child(excluded) == 0);
            pid_t included = start_storm(s.dir(), "ulk-final", 1000, 1);
            REQUIRE(wait_child(included) == 0);
            CHECK(t->engine->totals().deletes - mid.deletes == 1000);
            CHECK(t->processes_of(excluded).empty());
            CHECK(t->process(included).deletes == 1000);
        }
    }
}
