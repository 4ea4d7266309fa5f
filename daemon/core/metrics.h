// The Prometheus text exposition format (version 0.0.4) of unlinkd's
// counters (spec section 8), for `unlinkctl metrics`, its HTTP endpoint and
// its textfile. Pure: the client reads the input over D-Bus and prints or
// serves the text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unlinkd {

struct UnitCount {
    std::string unit;  // as on D-Bus: escaped per spec 1a (escape.h); "" for no unit
    std::uint64_t deletes = 0;
    std::uint64_t failures = 0;
};

struct MetricsInput {
    std::string version;
    std::string attach_mode;
    std::uint64_t unlink_deletes = 0;
    std::uint64_t rmdir_deletes = 0;
    std::uint64_t unlink_failures = 0;
    std::uint64_t rmdir_failures = 0;
    std::uint64_t lost_events = 0;
    std::uint64_t suppressed_signals = 0;
    std::uint64_t events_unstreamed = 0;
    std::uint64_t lost_exits = 0;
    std::uint64_t tracked_processes = 0;
    std::uint64_t evicted_processes = 0;
    std::vector<UnitCount> units;
};

// Units whose processes have no unit are labelled this; neither it nor
// "other" can be a real unit's name (those all end in a type suffix such
// as ".service").
inline constexpr const char* metrics_no_unit = "none";
inline constexpr std::size_t metrics_max_units = 50;

// A label value as the text format wants it: backslash, double quote and
// line feed escaped (\\, \", \n).
std::string prometheus_label_value(std::string_view value);

// The `max` units with the most deletes (ties: by name), most first, then
// the rest summed as "other" (always present, 0 when there is no rest, so
// the series does not come and go). A unit named "" becomes "none".
std::vector<UnitCount> busiest_units(std::vector<UnitCount> units, std::size_t max = metrics_max_units);

// The whole exposition: HELP and TYPE lines, then the samples, every line
// ending in "\n". Labels are bounded: op, mode, version, and at most
// metrics_max_units + 1 units; no pid or path.
std::string metrics_text(const MetricsInput& in);

// The content type the text format is served with.
inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace unlinkd

namespace unlinkd {

// The one request `unlinkctl metrics --http` answers (on the connection a
// socket unit accepted): GET (or HEAD) /metrics. Pure: the caller reads the
// request head and writes the response.
struct HttpAnswer {
    int status = 400;     // 200, 400, 404 or 405
    bool head = false;    // HEAD: the headers alone
};

// Decides from the request head (the bytes up to the blank line, or all
// that came): 200 for GET or HEAD of /metrics (a query string is ignored),
// 405 for another method, 404 for another path, 400 for anything that is not
// an HTTP/1.x request line.
HttpAnswer http_answer(std::string_view request_head);

// Whether `received` holds a whole request head (ends with an empty line).
bool http_head_complete(std::string_view received);

// A whole response, Connection: close; the body is left out for HEAD, its
// Content-Length kept.
std::string http_response(int status, std::string_view content_type, std::string_view body, bool head = false);

}  // namespace unlinkd
