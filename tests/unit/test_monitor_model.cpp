// unlinkd-monitor's model: what the window shows, without GTK or a bus.
#include <catch2/catch.hpp>

#include "model.h"

using monitor::EventRow;
using monitor::Model;
using monitor::ProcessRow;

namespace {
EventRow ev(std::uint64_t t, const char* path = "/tmp/x")
{
    EventRow e;
    e.time_usec = t;
    e.pid = 7;
    e.comm = "rm";
    e.path = path;
    e.op = "unlink";
    return e;
}
ProcessRow proc(std::uint32_t pid, std::uint64_t deletes)
{
    ProcessRow p;
    p.pid = pid;
    p.comm = "p" + std::to_string(pid);
    p.deletes = deletes;
    return p;
}
}  // namespace

TEST_CASE("monitor model: events are kept to the last N, and a flush says what changed", "[monitor]")
{
    Model m(3, 10);
    m.add_event(ev(1));
    m.add_event(ev(2));
    auto f = m.flush_events();
    CHECK(f.removed_oldest == 0);
    REQUIRE(f.added.size() == 2);
    CHECK(m.events().size() == 2);
    m.add_event(ev(3));
    m.add_event(ev(4));
    f = m.flush_events();
    CHECK(f.removed_oldest == 1);   // 1 went, 3 and 4 came
    CHECK(f.added.size() == 2);
    REQUIRE(m.events().size() == 3);
    CHECK(m.events().front().time_usec == 2);
    CHECK(m.events().back().time_usec == 4);
    // A storm between two flushes: only the last N are ever shown.
    for (std::uint64_t t = 100; t < 10100; ++t)
        m.add_event(ev(t));
    f = m.flush_events();
    CHECK(f.removed_oldest == 3);
    CHECK(f.added.size() == 3);
    CHECK(m.events().front().time_usec == 10097);
    CHECK(m.events_received() == 4 + 10000);
    f = m.flush_events();
    CHECK(f.removed_oldest == 0);
    CHECK(f.added.empty());
}

TEST_CASE("monitor model: top processes merge by pid, most deletes first", "[monitor]")
{
    Model m(10, 2);
    m.replace_processes({proc(1, 5), proc(2, 9), proc(3, 1)});
    auto top = m.top();
    REQUIRE(top.size() == 2);
    CHECK(top[0].pid == 2);
    CHECK(top[1].pid == 1);
    m.merge_processes({proc(3, 20)});   // a Summary: pid 3 changed
    top = m.top();
    CHECK(top[0].pid == 3);
    CHECK(top[0].deletes == 20);
    m.replace_processes({proc(4, 1)});
    REQUIRE(m.top().size() == 1);
    CHECK(m.top()[0].pid == 4);
    // Many processes: trimmed, the busiest kept.
    std::vector<ProcessRow> many;
    for (std::uint32_t pid = 10; pid < 5000; ++pid)
        many.push_back(proc(pid, pid));
    m.merge_processes(many);
    CHECK(m.top()[0].pid == 4999);
    CHECK(m.top()[1].pid == 4998);
}

TEST_CASE("monitor model: the recent events and the signals since Subscribe overlap once", "[monitor]")
{
    std::vector<EventRow> recent{ev(1), ev(2), ev(3)}, since{ev(2), ev(3), ev(4)};
    auto j = Model::join_recent(recent, since);
    REQUIRE(j.size() == 4);
    CHECK(j[0].time_usec == 1);
    CHECK(j[3].time_usec == 4);
    // No overlap; equal times with other paths are other events.
    j = Model::join_recent({ev(1), ev(2)}, {ev(2, "/tmp/other")});
    CHECK(j.size() == 3);
    CHECK(Model::join_recent({}, {ev(1)}).size() == 1);
    CHECK(Model::join_recent({ev(1)}, {}).size() == 1);
}

TEST_CASE("monitor model: the dump", "[monitor]")
{
    Model m(5, 5);
    CHECK(m.dump()["state"] == "connecting");
    m.state = monitor::DaemonState::not_running;
    m.header.total_deletes = 42;
    m.replace_processes({proc(9, 3)});
    auto e = ev(1'700'000'000'123'456);
    e.result = -2;
    m.add_event(e);
    m.flush_events();
    auto d = m.dump();
    CHECK(d["state"] == "not-running");
    CHECK(d["header"]["total_deletes"] == 42);
    REQUIRE(d["processes"].size() == 1);
    CHECK(d["processes"][0]["deletes"] == 3);
    REQUIRE(d["events"].size() == 1);
    CHECK(d["events"][0]["result_text"] == "ENOENT");
    CHECK(monitor::format_result(0) == "ok");
    CHECK(monitor::format_id(4294967295u) == "-");
    CHECK(monitor::format_time(1'700'000'000'123'456).size() == 12);   // HH:MM:SS.mmm
}
