#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/aggregate.h"
#include "core/event.h"
#include "core/format.h"
#include "core/journal_fields.h"
#include "unlinkd.h"

using namespace unlinkd;

// What the audit side of a record holds; unset by default, as for a daemon
// started at boot.
struct Attribution {
    std::uint32_t loginuid = UNLINKD_ID_UNSET;
    std::uint32_t sessionid = UNLINKD_ID_UNSET;
    std::string exe;
    std::uint8_t op = UNLINKD_OP_UNLINK;
};

static std::vector<char> entry_record(std::uint32_t ktid, const std::string& given, const std::string& path,
                                      const std::string& cgroup, std::uint8_t flags = 0, const Attribution& a = {})
{
    unlinkd_entry_record r{};
    r.kind = UNLINKD_RECORD_ENTRY;
    r.mode = UNLINKD_MODE_TRACEPOINT;
    r.flags = flags;
    r.kernel_tid = ktid;
    r.time_ns = 5'000'000'000ULL;
    r.cgroup_id = 77;
    r.pid = 4242;
    r.tid = 4243;
    r.ppid = 1;
    r.uid = 1000;
    r.gid = 100;
    r.given_len = static_cast<std::uint16_t>(given.size());
    r.path_len = static_cast<std::uint16_t>(path.size());
    r.cgroup_len = static_cast<std::uint16_t>(cgroup.size());
    r.exe_len = static_cast<std::uint16_t>(a.exe.size());
    r.loginuid = a.loginuid;
    r.sessionid = a.sessionid;
    r.op = a.op;
    std::strcpy(r.comm, "rm");
    std::vector<char> out(sizeof(r));
    std::memcpy(out.data(), &r, sizeof(r));
    for (const auto* s : {&given, &path, &cgroup, &a.exe})
        out.insert(out.end(), s->begin(), s->end());
    return out;
}

static std::vector<char> exit_record(std::uint32_t ktid, std::int32_t result)
{
    unlinkd_exit_record r{};
    r.kind = UNLINKD_RECORD_EXIT;
    r.kernel_tid = ktid;
    r.result = result;
    std::vector<char> out(sizeof(r));
    std::memcpy(out.data(), &r, sizeof(r));
    return out;
}

TEST_CASE("entry and exit records join into one event", "[event]")
{
    EventJoiner j;
    auto entry = entry_record(9, "a.txt", "/tmp/a.txt", "/system.slice/cron.service");
    CHECK_FALSE(j.on_record(entry.data(), entry.size(), 1'000'000'000).has_value());
    CHECK(j.pending() == 1);
    auto ex = exit_record(9, -2);
    auto e = j.on_record(ex.data(), ex.size(), 1'000'000'000);
    REQUIRE(e.has_value());
    CHECK(j.pending() == 0);
    CHECK(e->time_usec == 6'000'000);
    CHECK(e->pid == 4242);
    CHECK(e->tid == 4243);
    CHECK(e->uid == 1000);
    CHECK(e->gid == 100);
    CHECK(e->comm == "rm");
    CHECK(e->path_as_given == "a.txt");
    CHECK(e->path == "/tmp/a.txt");
    CHECK(e->unit == "cron.service");
    CHECK(e->result == -2);
    CHECK(e->mode == Mode::tracepoint);
    CHECK(e->op == "unlink");
    CHECK(e->loginuid == UNLINKD_ID_UNSET);
    CHECK(e->sessionid == UNLINKD_ID_UNSET);
    CHECK(e->exe.empty());
    CHECK(journal_message(*e) == "rm[4242] uid=1000 failed to delete /tmp/a.txt: ENOENT");
}

TEST_CASE("a nonsense timestamp wraps instead of overflowing", "[event]")
{
    // Found by tests/fuzz (record/time-overflow): the signed sum was undefined.
    EventJoiner j;
    auto entry = entry_record(3, "a", "/a", "/");
    std::uint64_t huge = INT64_MAX;
    std::memcpy(entry.data() + offsetof(unlinkd_entry_record, time_ns), &huge, sizeof(huge));
    (void)j.on_record(entry.data(), entry.size(), 1'000'000'000);
    auto ex = exit_record(3, 0);
    auto e = j.on_record(ex.data(), ex.size(), 1'000'000'000);
    REQUIRE(e);
    CHECK(e->time_usec == (std::uint64_t{INT64_MAX} + 1'000'000'000) / 1000);
}

TEST_CASE("a directory removal by an admin behind sudo: op, login uid, session and executable", "[event]")
{
    EventJoiner j;
    Attribution a{1000, 7, "/usr/bin/rmdir", UNLINKD_OP_RMDIR};
    auto entry = entry_record(3, "d", "/etc/d", "/user.slice", 0, a);
    (void)j.on_record(entry.data(), entry.size(), 0);
    auto ex = exit_record(3, 0);
    auto e = j.on_record(ex.data(), ex.size(), 0);
    REQUIRE(e);
    CHECK(e->op == "rmdir");
    CHECK(e->loginuid == 1000);
    CHECK(e->sessionid == 7);
    CHECK(e->exe == "/usr/bin/rmdir");
    CHECK(e->path == "/etc/d");
    CHECK(e->cgroup_path == "/user.slice");
    CHECK(journal_message(*e) == "rm[4242] uid=1000 removed directory /etc/d");  // auid == uid: not repeated
    e->uid = 0;
    CHECK(journal_message(*e) == "rm[4242] uid=0 auid=1000 removed directory /etc/d");
    e->result = -39;
    CHECK(journal_message(*e) == "rm[4242] uid=0 auid=1000 failed to remove directory /etc/d: ENOTEMPTY");
    e->op = "unlink";
    e->result = 0;
    CHECK(journal_message(*e) == "rm[4242] uid=0 auid=1000 deleted /etc/d");

    auto json = event_json(*e);
    CHECK(json["loginuid"] == 1000);
    CHECK(json["sessionid"] == 7);
    CHECK(json["exe"] == "/usr/bin/rmdir");
    CHECK(json["op"] == "unlink");

    e->op = "rmdir";
    // Bytes a user chose: raw in the journal field, escaped everywhere else.
    e->exe = std::string("/tmp/bad") + '\n' + "\xff";
    auto fields = deletion_fields(*e);
    auto has = [&](const std::string& f) { return std::find(fields.begin(), fields.end(), f) != fields.end(); };
    CHECK(has("UNLINKD_LOGINUID=1000"));
    CHECK(has("UNLINKD_SESSIONID=7"));
    CHECK(has("UNLINKD_OP=rmdir"));
    CHECK(has("UNLINKD_EXE=" + e->exe));
    CHECK(event_json(*e)["exe"] == "/tmp/bad\\x0a\\xff");
    CHECK(journal_message(*e).find('\n') == std::string::npos);
}

TEST_CASE("an unset login uid is never shown as auid, and is a journal field like any", "[event]")
{
    Event e;
    e.comm = "rm";
    e.pid = 1;
    e.uid = 0;
    e.path = "/a";
    CHECK(journal_message(e) == "rm[1] uid=0 deleted /a");
    auto fields = deletion_fields(e);
    CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_LOGINUID=4294967295") != fields.end());
    CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_SESSIONID=4294967295") != fields.end());
    CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_EXE=") != fields.end());
    CHECK(std::find(fields.begin(), fields.end(), "UNLINKD_OP=unlink") != fields.end());
}

TEST_CASE("an unresolved path is empty and the message shows the given name", "[event]")
{
    EventJoiner j;
    auto entry = entry_record(1, "x", "", "/", UNLINKD_EVENT_PATH_UNRESOLVED);
    (void)j.on_record(entry.data(), entry.size(), 0);
    auto ex = exit_record(1, 0);
    auto e = j.on_record(ex.data(), ex.size(), 0);
    REQUIRE(e);
    CHECK(e->path_truncated);
    CHECK(e->path.empty());
    CHECK(e->unit.empty());
    CHECK(journal_message(*e) == "rm[4242] uid=1000 deleted x");
    CHECK(event_json(*e)["path"] == "");
    CHECK(event_json(*e)["path_as_given"] == "x");
}

TEST_CASE("lost records never produce a wrong event", "[event]")
{
    EventJoiner j;
    auto orphan = exit_record(5, 0);
    CHECK_FALSE(j.on_record(orphan.data(), orphan.size(), 0));
    CHECK(j.unmatched_exits() == 1);

    auto first = entry_record(6, "one", "/one", "/");
    auto second = entry_record(6, "two", "/two", "/");
    (void)j.on_record(first.data(), first.size(), 0);   // its exit was lost
    (void)j.on_record(second.data(), second.size(), 0);
    auto ex = exit_record(6, 0);
    auto e = j.on_record(ex.data(), ex.size(), 0);
    REQUIRE(e);
    CHECK(e->path == "/two");

    auto shortrec = entry_record(7, "abc", "/abc", "/");
    CHECK_FALSE(j.on_record(shortrec.data(), shortrec.size() - 1, 0));
    CHECK(j.malformed() == 1);
    char junk = 99;
    CHECK_FALSE(j.on_record(&junk, 1, 0));
    CHECK(j.malformed() == 2);
}

TEST_CASE("totals sum over CPUs and derive evictions", "[aggregate]")
{
    std::vector<unlinkd_totals> cpus(2);
    cpus[1].new_processes = 10;
    cpus[0].ringbuf_drops = 2;
    cpus[0].op_deletes[UNLINKD_OP_UNLINK] = 3;
    cpus[1].op_deletes[UNLINKD_OP_UNLINK] = 2;
    cpus[1].op_deletes[UNLINKD_OP_RMDIR] = 2;
    cpus[0].op_failures[UNLINKD_OP_RMDIR] = 1;
    auto t = sum_totals(cpus, 7);
    CHECK(t.unlink_deletes == 5);
    CHECK(t.rmdir_deletes == 2);
    CHECK(t.unlink_failures == 0);
    CHECK(t.rmdir_failures == 1);
    CHECK(t.deletes == 7);
    CHECK(t.failures == 1);
    CHECK(t.lost_events == 2);
    CHECK(t.tracked_processes == 7);
    CHECK(t.evicted_processes == 3);
}

TEST_CASE("top_processes orders by deletes and cuts", "[aggregate]")
{
    std::vector<ProcessStats> all(4);
    all[0].pid = 1, all[0].deletes = 5;
    all[1].pid = 2, all[1].deletes = 9;
    all[2].pid = 3, all[2].deletes = 5, all[2].failures = 1;
    all[3].pid = 4, all[3].deletes = 0;
    auto top = top_processes(all, 3);
    REQUIRE(top.size() == 3);
    CHECK(top[0].pid == 2);
    CHECK(top[1].pid == 3);
    CHECK(top[2].pid == 1);
    CHECK(top_processes(all, 100).size() == 4);
}

TEST_CASE("to_process_stats converts times and comm", "[aggregate]")
{
    unlinkd_process_key k{};
    k.tgid = 9;
    k.start_ns = 11;
    unlinkd_process v{};
    v.deletes = 2;
    v.first_ns = 2'000'000;
    v.last_ns = 3'000'000;
    v.pid = 8;
    v.loginuid = 1000;
    std::memcpy(v.comm, "0123456789abcdef", 16);  // no NUL: 16 bytes
    auto p = to_process_stats(k, v, 1'000'000);
    CHECK(p.first_usec == 3000);
    CHECK(p.last_usec == 4000);
    CHECK(p.comm == "0123456789abcdef");
    CHECK(p.pid == 8);
    CHECK(p.kernel_tgid == 9);
    CHECK(p.loginuid == 1000);
    CHECK(process_json(p)["loginuid"] == 1000);
}

TEST_CASE("journal entries in journald's native protocol, newlines in values binary-safe", "[journal]")
{
    CHECK(journal_native_entry({"MESSAGE=rm[1] deleted /tmp/a", "PRIORITY=6"}) ==
          "MESSAGE=rm[1] deleted /tmp/a\nPRIORITY=6\n");
    // A comm is any 15 bytes a user picks: a newline in a value must not
    // end the field (it would forge a field of its own).
    std::string forged = "UNLINKD_COMM=a\nPRIORITY=0";
    std::string want = std::string("UNLINKD_COMM\n") + std::string("\x0c\0\0\0\0\0\0\0", 8) + "a\nPRIORITY=0\n";
    CHECK(journal_native_entry({forged}) == want);
    CHECK(journal_native_entry({"no equals sign", "A="}) == "A=\n");
    CHECK(journal_native_entry({}).empty());
}

TEST_CASE("the not-logged entry says why, journald's share included", "[journal]")
{
    CHECK(not_logged_fields(7, 200)[0] == "MESSAGE=7 deletions not logged (more than 200 a second); the counts stay exact");
    CHECK(not_logged_fields(7, 200, 3)[0] ==
          "MESSAGE=7 deletions not logged (more than 200 a second; 3 of them because journald did not keep up); the "
          "counts stay exact");
    CHECK(not_logged_fields(7, 200, 3)[3] == "UNLINKD_NOT_LOGGED=7");
}
