// The Prometheus text of `unlinkctl metrics` and its one-request HTTP server:
// exact text for known input.
#include <catch2/catch.hpp>

#include "core/aggregate.h"
#include "core/escape.h"
#include "core/metrics.h"

using namespace unlinkd;

TEST_CASE("the metrics text for known counters, exactly", "[metrics]")
{
    MetricsInput in;
    in.version = "0.1.0";
    in.attach_mode = "fentry";
    in.unlink_deletes = 7;
    in.rmdir_deletes = 2;
    in.unlink_failures = 1;
    in.rmdir_failures = 3;
    in.lost_events = 4;
    in.suppressed_signals = 5;
    in.events_unstreamed = 6;
    in.lost_exits = 8;
    in.tracked_processes = 9;
    in.evicted_processes = 10;
    // As on D-Bus: names already escaped per spec 1a; a quote, a backslash
    // (escaped as \\ by escape_name) and an invalid byte.
    in.units = {{"cron.service", 3, 0}, {"", 1, 0}, {escape_name("a\"b\\c\xff.service"), 5, 1}};
    CHECK(metrics_text(in) ==
          "# HELP unlinkd_deletes_total Successful deletions (unlink: files, rmdir: directories).\n"
          "# TYPE unlinkd_deletes_total counter\n"
          "unlinkd_deletes_total{op=\"unlink\"} 7\n"
          "unlinkd_deletes_total{op=\"rmdir\"} 2\n"
          "# HELP unlinkd_failures_total Deletion attempts that returned an error.\n"
          "# TYPE unlinkd_failures_total counter\n"
          "unlinkd_failures_total{op=\"unlink\"} 1\n"
          "unlinkd_failures_total{op=\"rmdir\"} 3\n"
          "# HELP unlinkd_lost_events_total Events dropped between the kernel and the daemon (ring buffer full); "
          "counts stay exact.\n"
          "# TYPE unlinkd_lost_events_total counter\n"
          "unlinkd_lost_events_total 4\n"
          "# HELP unlinkd_suppressed_signals_total Deleted signals not sent (over max_signals_per_sec, or never "
          "streamed).\n"
          "# TYPE unlinkd_suppressed_signals_total counter\n"
          "unlinkd_suppressed_signals_total 5\n"
          "# HELP unlinkd_events_unstreamed_total Deletions counted but not streamed to the daemon (the kernel's "
          "stream budget).\n"
          "# TYPE unlinkd_events_unstreamed_total counter\n"
          "unlinkd_events_unstreamed_total 6\n"
          "# HELP unlinkd_lost_exits_total Deletions counted whose result is unknown (exit never seen).\n"
          "# TYPE unlinkd_lost_exits_total counter\n"
          "unlinkd_lost_exits_total 8\n"
          "# HELP unlinkd_tracked_processes Processes in the kernel's per-process table.\n"
          "# TYPE unlinkd_tracked_processes gauge\n"
          "unlinkd_tracked_processes 9\n"
          "# HELP unlinkd_evicted_processes_total Processes dropped from the per-process table to make room (LRU).\n"
          "# TYPE unlinkd_evicted_processes_total counter\n"
          "unlinkd_evicted_processes_total 10\n"
          "# HELP unlinkd_attach_mode The attach mode in effect.\n"
          "# TYPE unlinkd_attach_mode gauge\n"
          "unlinkd_attach_mode{mode=\"fentry\"} 1\n"
          "# HELP unlinkd_build_info The daemon's version.\n"
          "# TYPE unlinkd_build_info gauge\n"
          "unlinkd_build_info{version=\"0.1.0\"} 1\n"
          "# HELP unlinkd_unit_deletes_total Successful deletions by the processes of a systemd unit still in the "
          "per-process table: the 50 busiest units, the rest as unit=\"other\", no unit as unit=\"none\".\n"
          "# TYPE unlinkd_unit_deletes_total counter\n"
          "unlinkd_unit_deletes_total{unit=\"a\\\"b\\\\\\\\c\\\\xff.service\"} 5\n"
          "unlinkd_unit_deletes_total{unit=\"cron.service\"} 3\n"
          "unlinkd_unit_deletes_total{unit=\"none\"} 1\n"
          "unlinkd_unit_deletes_total{unit=\"other\"} 0\n");
}

TEST_CASE("label values escape backslash, quote and line feed", "[metrics]")
{
    CHECK(prometheus_label_value("plain.service") == "plain.service");
    CHECK(prometheus_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    // Layered: the label's value, once Prometheus unescapes it, is the name
    // as spec 1a writes it, reversible to the bytes.
    std::string raw = "x\ny\\z\x80";
    CHECK(escape_name(raw) == "x\\x0ay\\\\z\\x80");
    CHECK(prometheus_label_value(escape_name(raw)) == "x\\\\x0ay\\\\\\\\z\\\\x80");
}

TEST_CASE("the 50 busiest units, the rest summed as other", "[metrics]")
{
    std::vector<UnitCount> units;
    for (int i = 0; i < 60; ++i) {
        std::string name = "u";  // appended: "u" + std::to_string(i) trips GCC 12's -Wrestrict (PR 105651)
        name += std::to_string(i);
        name += ".service";
        units.push_back({name, static_cast<std::uint64_t>(100 + i), 1});
    }
    units.push_back({"tie-b.service", 130, 0});
    units.push_back({"tie-a.service", 130, 0});
    auto top = busiest_units(units);
    REQUIRE(top.size() == 51);
    CHECK(top[0].unit == "u59.service");
    // 130: u30, tie-a, tie-b, by name
    auto at = [&](const std::string& name) {
        for (size_t i = 0; i < top.size(); ++i)
            if (top[i].unit == name)
                return static_cast<int>(i);
        return -1;
    };
    CHECK(at("tie-a.service") + 1 == at("tie-b.service"));
    CHECK(at("tie-b.service") + 1 == at("u30.service"));
    CHECK(at("u11.service") == -1);  // the 12 smallest (u0..u11) are in other
    CHECK(at("u12.service") == 49);
    CHECK(top[50].unit == "other");
    CHECK(top[50].deletes == 100 * 12 + (0 + 11) * 12 / 2);
    CHECK(top[50].failures == 12);

    auto few = busiest_units({{"a.service", 1, 0}});
    REQUIRE(few.size() == 2);
    CHECK(few[1].unit == "other");
    CHECK(few[1].deletes == 0);
}

TEST_CASE("unit_stats sums the process table by unit", "[metrics]")
{
    std::vector<ProcessStats> ps(4);
    ps[0].unit = "cron.service", ps[0].deletes = 2, ps[0].failures = 1;
    ps[1].unit = "", ps[1].deletes = 5;
    ps[2].unit = "cron.service", ps[2].deletes = 3;
    ps[3].unit = "a.service", ps[3].failures = 4;
    auto u = unit_stats(ps);
    REQUIRE(u.size() == 3);
    CHECK((u[0].unit == "" && u[0].deletes == 5 && u[0].failures == 0));
    CHECK((u[1].unit == "a.service" && u[1].deletes == 0 && u[1].failures == 4));
    CHECK((u[2].unit == "cron.service" && u[2].deletes == 5 && u[2].failures == 1));
}

TEST_CASE("the HTTP request decides the answer", "[metrics][http]")
{
    CHECK(http_answer("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status == 200);
    CHECK(http_answer("GET /metrics?x=1 HTTP/1.0\n\n").status == 200);
    auto head = http_answer("HEAD /metrics HTTP/1.1\r\n\r\n");
    CHECK((head.status == 200 && head.head));
    CHECK(http_answer("GET / HTTP/1.1\r\n\r\n").status == 404);
    CHECK(http_answer("GET /metricsx HTTP/1.1\r\n\r\n").status == 404);
    CHECK(http_answer("POST /metrics HTTP/1.1\r\n\r\n").status == 405);
    CHECK(http_answer("DELETE /x HTTP/1.1\r\n\r\n").status == 405);
    CHECK(http_answer("").status == 400);
    CHECK(http_answer("\r\n\r\n").status == 400);
    CHECK(http_answer("GET /metrics\r\n\r\n").status == 400);
    CHECK(http_answer("GET /metrics HTTP/2\r\n\r\n").status == 400);
    CHECK(http_answer("GET  /metrics HTTP/1.1\r\n\r\n").status == 400);
    CHECK(http_answer("get /metrics HTTP/1.1\r\n\r\n").status == 400);
    CHECK(http_answer("GET metrics HTTP/1.1\r\n\r\n").status == 400);
    CHECK(http_answer("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n").status == 400);  // TLS
    CHECK(http_head_complete("GET / HTTP/1.1\r\n\r\n"));
    CHECK(http_head_complete("GET / HTTP/1.1\n\n"));
    CHECK_FALSE(http_head_complete("GET / HTTP/1.1\r\nHost: x\r\n"));
}

TEST_CASE("HTTP responses, exactly", "[metrics][http]")
{
    CHECK(http_response(200, metrics_content_type, "a 1\n") ==
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
          "Connection: close\r\n\r\na 1\n");
    CHECK(http_response(200, metrics_content_type, "a 1\n", true) ==
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
          "Connection: close\r\n\r\n");
    CHECK(http_response(405, "text/plain", "no\n") ==
          "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nAllow: GET, HEAD\r\n"
          "Connection: close\r\n\r\nno\n");
    CHECK(http_response(404, "text/plain", "").rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
}
