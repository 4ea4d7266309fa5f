// Exact counts, results, ids and resolved paths for known workloads, in
// every mode listed in UNLINKD_TEST_MODES.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "core/format.h"
#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;

namespace {

// "r3": appended, not "r" + std::to_string(i), which GCC 12 -O3 warns about
// falsely (-Wrestrict, GCC PR 105651).
std::string numbered(const char* prefix, int i)
{
    std::string name = prefix;
    name += std::to_string(i);
    return name;
}

}  // namespace

TEST_CASE("absolute, cwd-relative and dirfd-relative deletions: exact counts and resolved paths", "[counts]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(mkdir(s.path("sub").c_str(), 0755) == 0);
            for (auto n : {"abs.txt", "sub/rel.txt", "sub/fd.txt", "sub/dots.txt", "sub/rm-me"})
                s.create(n);
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-paths"}, [&]() {
                if (unlink(s.path("abs.txt").c_str()))
                    return 1;
                if (chdir(s.dir().c_str()) || unlink("sub/rel.txt"))
                    return 2;
                int fd = open("sub", O_RDONLY | O_DIRECTORY);
                if (fd < 0 || unlinkat(fd, "fd.txt", 0) || unlinkat(fd, "../sub/./dots.txt", 0))
                    return 3;
                if (chdir("/") || unlinkat(fd, "rm-me", 0))  // dirfd stays valid after chdir
                    return 4;
                return 0;
            });
            REQUIRE(t->drain_until([&]() { return t->collector.for_pid(pid).size() >= 5; }));
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == 5);
            CHECK(ev[0].path == s.path("abs.txt"));
            CHECK(ev[0].path_as_given == s.path("abs.txt"));
            CHECK(ev[1].path == s.path("sub/rel.txt"));
            CHECK(ev[1].path_as_given == "sub/rel.txt");
            CHECK(ev[2].path == s.path("sub/fd.txt"));
            CHECK(ev[2].path_as_given == "fd.txt");
            CHECK(ev[3].path == s.path("sub/dots.txt"));
            CHECK(ev[3].path_as_given == "../sub/./dots.txt");
            CHECK(ev[4].path == s.path("sub/rm-me"));
            for (const auto& e : ev) {
                CHECK(e.result == 0);
                CHECK(e.comm == "ulk-paths");
                CHECK(e.uid == 0);
                CHECK(e.gid == 0);
                CHECK(e.tid == static_cast<std::uint32_t>(pid));
                CHECK(e.ppid == static_cast<std::uint32_t>(getpid()));
                CHECK(e.mode == mode);
                CHECK(e.op == "unlink");
                CHECK_FALSE(e.path_truncated);
                CHECK(e.time_usec > 0);
            }
            auto p = t->process(pid);
            CHECK(p.deletes == 5);
            CHECK(p.failures == 0);
            CHECK(p.comm == "ulk-paths");
            CHECK(p.uid == 0);
            CHECK(p.first_usec <= p.last_usec);
        }
    }
}

// The kernel side scans a name eight bytes at a time for its separators
// and falls back to a byte at a time beyond UNLINKD_MAX_COMPONENTS of them:
// names whose '/', ".", ".." and end fall at every offset of a word, and
// one with 301 separators.
TEST_CASE("names are normalised wherever their separators fall, and with hundreds of them", "[counts]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(mkdir(s.path("sub").c_str(), 0755) == 0);
            REQUIRE(mkdir(s.path("sub/d").c_str(), 0755) == 0);
            std::string many;
            for (int i = 0; i < 300; ++i)
                many += "./";
            many += "sub/d/f3";
            const std::vector<std::pair<std::string, std::string>> cases = {
                {"sub//d/./../d/f1", "sub/d/f1"},
                {"sub/d/f2", "sub/d/f2"},                  // ends at a word's last byte + 1
                {"sub/d/f67890abcd", "sub/d/f67890abcd"},  // 16 bytes: the end opens a word
                {many, "sub/d/f3"},                        // 301 separators: the fallback
                {"./sub/d/../../sub/d/f4567890", "sub/d/f4567890"},
                {"sub/./d/.hidden", "sub/d/.hidden"},
                {"sub/d/..x", "sub/d/..x"},  // not "..": a name
                {"/" + s.dir() + "//sub///d/f5", "sub/d/f5"},
            };
            for (const auto& c : cases)
                s.create(c.second);
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-norm"}, [&]() {
                if (chdir(s.dir().c_str()))
                    return 1;
                for (const auto& c : cases)
                    if (unlink(c.first.c_str()))
                        return 2;
                return 0;
            });
            REQUIRE(t->drain_until([&]() { return t->collector.for_pid(pid).size() >= cases.size(); }));
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == cases.size());
            for (std::size_t i = 0; i < cases.size(); ++i) {
                INFO("name " << cases[i].first);
                CHECK(ev[i].result == 0);
                CHECK(ev[i].path_as_given == cases[i].first);
                CHECK(ev[i].path == s.path(cases[i].second));
                CHECK_FALSE(ev[i].path_truncated);
            }
            CHECK(t->process(pid).deletes == cases.size());
        }
    }
}

TEST_CASE("failures carry the errno: ENOENT, EACCES as a non-root uid, EISDIR", "[counts]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            s.create("rootfile");
            REQUIRE(mkdir(s.path("dir").c_str(), 0755) == 0);
            auto t = start_engine(mode);
            pid_t nobody = run_child({"ulk-eacces", 65534, 65534}, [&]() {
                return unlink(s.path("rootfile").c_str()) == -1 && errno == EACCES ? 0 : 1;
            });
            pid_t root = run_child({"ulk-fail"}, [&]() {
                bool enoent = unlink(s.path("missing").c_str()) == -1 && errno == ENOENT;
                bool eisdir = unlink(s.path("dir").c_str()) == -1 && errno == EISDIR;
                return enoent && eisdir ? 0 : 1;
            });
            REQUIRE(t->drain_until([&]() {
                return t->collector.for_pid(nobody).size() == 1 && t->collector.for_pid(root).size() == 2;
            }));
            auto e = t->collector.for_pid(nobody).front();
            CHECK(e.result == -EACCES);
            CHECK(e.uid == 65534);
            CHECK(e.gid == 65534);
            CHECK(e.comm == "ulk-eacces");
            CHECK(e.path == s.path("rootfile"));
            auto r = t->collector.for_pid(root);
            CHECK(r[0].result == -ENOENT);
            CHECK(r[0].path == s.path("missing"));
            CHECK(r[1].result == -EISDIR);
            CHECK(r[1].path == s.path("dir"));

            auto pn = t->process(nobody);
            CHECK(pn.deletes == 0);
            CHECK(pn.failures == 1);
            CHECK(pn.uid == 65534);
            auto pr = t->process(root);
            CHECK(pr.deletes == 0);
            CHECK(pr.failures == 2);
            CHECK(access(s.path("rootfile").c_str(), F_OK) == 0);
        }
    }
}

TEST_CASE("directory removal: rmdir and dirfd-relative AT_REMOVEDIR are op rmdir, with ENOTEMPTY and ENOENT",
          "[counts][rmdir]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto d : {"d1", "sub", "sub/d2", "full"})
                REQUIRE(mkdir(s.path(d).c_str(), 0755) == 0);
            s.create("full/keep");
            s.create("f");
            auto t = start_engine(mode);
            auto before = t->engine->counters();
            pid_t pid = run_child({"ulk-rmdir"}, [&]() {
                if (rmdir(s.path("d1").c_str()))
                    return 1;
                int fd = open(s.path("sub").c_str(), O_RDONLY | O_DIRECTORY);
                if (fd < 0 || unlinkat(fd, "d2", AT_REMOVEDIR))
                    return 2;
                if (rmdir(s.path("full").c_str()) != -1 || errno != ENOTEMPTY)
                    return 3;
                if (unlinkat(fd, "missing", AT_REMOVEDIR) != -1 || errno != ENOENT)
                    return 4;
                // An invalid flag is EINVAL before either function: no deletion.
                if (unlinkat(AT_FDCWD, s.path("f").c_str(), 0x4000) != -1 || errno != EINVAL)
                    return 5;
                return unlink(s.path("f").c_str()) ? 6 : 0;
            });
            REQUIRE(t->drain_until([&]() { return t->collector.for_pid(pid).size() >= 5; }));
            t->drain_all();  // the child has exited: every record is written
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == 5);
            CHECK(ev[0].op == "rmdir");
            CHECK(ev[0].path == s.path("d1"));
            CHECK(ev[0].result == 0);
            CHECK(ev[1].op == "rmdir");
            CHECK(ev[1].path == s.path("sub/d2"));
            CHECK(ev[1].path_as_given == "d2");
            CHECK(ev[1].result == 0);
            CHECK(ev[2].op == "rmdir");
            CHECK(ev[2].path == s.path("full"));
            CHECK(ev[2].result == -ENOTEMPTY);
            CHECK(ev[3].op == "rmdir");
            CHECK(ev[3].path == s.path("sub/missing"));
            CHECK(ev[3].result == -ENOENT);
            CHECK(ev[4].op == "unlink");
            CHECK(ev[4].path == s.path("f"));
            CHECK(ev[4].result == 0);
            for (const auto& e : ev) {
                CHECK(e.comm == "ulk-rmdir");
                CHECK(e.mode == mode);
                CHECK(e.tid == static_cast<std::uint32_t>(pid));
            }
            CHECK(journal_message(ev[0]) == "ulk-rmdir[" + std::to_string(pid) + "] uid=0 removed directory " +
                                                s.path("d1"));
            CHECK(journal_message(ev[2]) == "ulk-rmdir[" + std::to_string(pid) +
                                                "] uid=0 failed to remove directory " + s.path("full") +
                                                ": ENOTEMPTY");
            // deletes and failures count both ops.
            auto p = t->process(pid);
            CHECK(p.deletes == 3);
            CHECK(p.failures == 2);
            auto after = t->engine->counters();
            CHECK(after.deletes - before.deletes >= 3);
            CHECK(access(s.path("full/keep").c_str(), F_OK) == 0);
            CHECK(access(s.path("sub").c_str(), F_OK) == 0);
        }
    }
}

TEST_CASE("a reused pid is counted as a new process", "[counts]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (int i = 0; i < 5; ++i)
                s.create(numbered("r", i));
            auto t = start_engine(mode);
            pid_t first = run_child({"ulk-reuse"}, [&]() {
                return unlink(s.path("r0").c_str()) || unlink(s.path("r1").c_str()) ? 1 : 0;
            });
            // ns_last_pid makes the next fork take `first` again; another
            // process forking in between spoils a try, so try a few times.
            pid_t second = -1;
            for (int attempt = 0; attempt < 50 && second != first; ++attempt) {
                std::ofstream("/proc/sys/kernel/ns_last_pid") << first - 1 << std::flush;
                pid_t child = spawn({"ulk-reuse"}, [&]() {
                    if (getpid() != first)
                        return 7;
                    for (int i = 2; i < 5; ++i)
                        if (unlink(s.path(numbered("r", i)).c_str()))
                            return 1;
                    return 0;
                });
                int code = wait_child(child);
                if (child == first) {
                    REQUIRE(code == 0);
                    second = child;
                }
            }
            REQUIRE(second == first);
            auto entries = t->processes_of(static_cast<std::uint32_t>(first));
            REQUIRE(entries.size() == 2);
            std::uint64_t a = entries[0].deletes, b = entries[1].deletes;
            CHECK(std::min(a, b) == 2);
            CHECK(std::max(a, b) == 3);
            CHECK(entries[0].start_ns != entries[1].start_ns);
        }
    }
}

TEST_CASE("counting without streaming needs no ring buffer and stays exact", "[counts]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (int i = 0; i < 10; ++i)
                s.create(numbered("q", i));
            auto t = start_engine(mode, {}, false);
            auto before = t->engine->totals();
            pid_t pid = run_child({"ulk-quiet"}, [&]() {
                for (int i = 0; i < 10; ++i)
                    if (unlink(s.path(numbered("q", i)).c_str()))
                        return 1;
                return unlink(s.path("q0").c_str()) == -1 ? 0 : 2;
            });
            t->drain_all();  // the child has exited: anything streamed is written
            CHECK(t->collector.events.empty());
            auto p = t->process(pid);
            CHECK(p.deletes == 10);
            CHECK(p.failures == 1);
            auto after = t->engine->totals();
            CHECK(after.events_streamed == before.events_streamed);
            CHECK(after.deletes - before.deletes >= 10);
        }
    }
}

TEST_CASE("a name whose page is not faulted in yet is still reported", "[counts]")
{
    // The name lives in a file mapping nobody touched: at syscall entry its
    // page is not present, so tracepoint mode cannot read it there and must
    // read it at exit, after the kernel faulted it in.
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            s.create("lazy-victim");
            std::string name = s.path("lazy-victim");
            std::string holder = s.path("name-holder");
            {
                std::ofstream out(holder);
                out << name << '\0';
            }
            auto t = start_engine(mode, {"path=" + s.dir()});
            pid_t pid = run_child({"ulk-lazy"}, [&]() {
                int fd = open(holder.c_str(), O_RDONLY);
                void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
                if (fd < 0 || p == MAP_FAILED)
                    return 1;
                return unlink(static_cast<const char*>(p)) ? 2 : 0;
            });
            REQUIRE(t->drain_until([&]() { return !t->collector.for_pid(pid).empty(); }));
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == 1);
            CHECK(ev[0].path == name);
            CHECK(ev[0].path_as_given == name);
            CHECK(ev[0].result == 0);
            CHECK(t->process(pid).deletes == 1);
        }
    }
}
