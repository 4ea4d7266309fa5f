// Who deleted it: the audit login uid and session (auditd's auid and ses)
// and the executable, on every event, in every mode. The child logs in as
// pam_loginuid does (it writes /proc/self/loginuid, so the kernel gives it a
// new session) and deletes as root: the events must name that login uid,
// that session and the child's executable, and the process row the login uid.
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "core/format.h"
#include "core/journal_fields.h"
#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;

TEST_CASE("a child with a login uid of its own deletes as root: loginuid, session and exe", "[counts][loginuid]")
{
    constexpr std::uint32_t auid = 4242;
    // The host's or guest's own login uid decides nothing here: root may
    // set its child's unless the kernel made it immutable (audit -e 2).
    INFO("this process: loginuid " << own_loginuid() << ", session " << own_sessionid());
    const std::string exe = own_exe();
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(mkdir(s.path("dir").c_str(), 0755) == 0);
            s.create("file");
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-auid", 0, 0, {}, auid}, [&]() {
                std::ofstream(s.path("session")) << own_sessionid();
                if (rmdir(s.path("dir").c_str()) || unlink(s.path("file").c_str()))
                    return 1;
                return 0;
            });
            std::uint32_t session = 0;
            REQUIRE(std::ifstream(s.path("session")) >> session);
            CHECK(session != UNLINKD_ID_UNSET);  // setting the login uid opened a session
            // The test process is untouched: only the child logged in.
            CHECK(own_loginuid() != auid);

            REQUIRE(t->drain_until([&]() { return t->collector.for_pid(pid).size() >= 2; }));
            auto ev = t->collector.for_pid(pid);
            REQUIRE(ev.size() == 2);
            CHECK(ev[0].op == "rmdir");
            CHECK(ev[1].op == "unlink");
            for (const auto& e : ev) {
                CHECK(e.uid == 0);
                CHECK(e.loginuid == auid);
                CHECK(e.sessionid == session);
                CHECK(e.exe == exe);
                CHECK(e.result == 0);
            }
            std::string head = "ulk-auid[" + std::to_string(pid) + "] uid=0 auid=4242 ";
            CHECK(journal_message(ev[0]) == head + "removed directory " + s.path("dir"));
            CHECK(journal_message(ev[1]) == head + "deleted " + s.path("file"));
            auto fields = deletion_fields(ev[0]);
            for (auto f : {"UNLINKD_LOGINUID=4242", "UNLINKD_OP=rmdir"})
                CHECK(std::find(fields.begin(), fields.end(), f) != fields.end());
            CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_SESSIONID=" + std::to_string(session)) !=
                  fields.end());
            CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_EXE=" + exe) != fields.end());

            auto p = t->process(pid);
            CHECK(p.loginuid == auid);
            CHECK(p.uid == 0);
            CHECK(p.deletes == 2);
        }
    }
}

TEST_CASE("a child that never logged in carries its parent's login uid and session", "[counts][loginuid]")
{
    std::uint32_t auid = own_loginuid(), session = own_sessionid();
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            s.create("f");
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-inherit", 65534, 65534}, [&]() { return unlink(s.path("f").c_str()) ? 0 : 1; });
            REQUIRE(t->drain_until([&]() { return t->collector.for_pid(pid).size() >= 1; }));
            auto e = t->collector.for_pid(pid).front();
            CHECK(e.uid == 65534);
            CHECK(e.result == -EACCES);  // the scratch directory is root's
            CHECK(e.loginuid == auid);
            CHECK(e.sessionid == session);
            CHECK(t->process(pid).loginuid == auid);
            // An unset login uid is never shown as auid=; a set one differs
            // from uid 65534 and is shown.
            std::string msg = journal_message(e);
            if (auid == UNLINKD_ID_UNSET)
                CHECK(msg.find("auid=") == std::string::npos);
            else
                CHECK(msg.find(" auid=" + std::to_string(auid) + " ") != std::string::npos);
        }
    }
}
