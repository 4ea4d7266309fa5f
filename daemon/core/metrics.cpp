#include "metrics.h"

#include <algorithm>
#include <tuple>

namespace unlinkd {

std::string prometheus_label_value(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::vector<UnitCount> busiest_units(std::vector<UnitCount> units, std::size_t max)
{
    for (auto& u : units)
        if (u.unit.empty())
            u.unit = metrics_no_unit;
    std::sort(units.begin(), units.end(), [](const UnitCount& a, const UnitCount& b) {
        return std::tie(b.deletes, a.unit) < std::tie(a.deletes, b.unit);
    });
    UnitCount other{"other", 0, 0};
    for (std::size_t i = max; i < units.size(); ++i) {
        other.deletes += units[i].deletes;
        other.failures += units[i].failures;
    }
    if (units.size() > max)
        units.resize(max);
    units.push_back(std::move(other));
    return units;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help)
{
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, const char* name, std::uint64_t value)
{
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
}

void sample(std::string& out, const char* name, const char* label, std::string_view label_value, std::uint64_t value)
{
    out += name;
    out += '{';
    out += label;
    out += "=\"";
    out += prometheus_label_value(label_value);
    out += "\"} ";
    out += std::to_string(value);
    out += '\n';
}

}  // namespace

std::string metrics_text(const MetricsInput& in)
{
    std::string out;
    family(out, "unlinkd_deletes_total", "counter", "Successful deletions (unlink: files, rmdir: directories).");
    sample(out, "unlinkd_deletes_total", "op", "unlink", in.unlink_deletes);
    sample(out, "unlinkd_deletes_total", "op", "rmdir", in.rmdir_deletes);
    family(out, "unlinkd_failures_total", "counter", "Deletion attempts that returned an error.");
    sample(out, "unlinkd_failures_total", "op", "unlink", in.unlink_failures);
    sample(out, "unlinkd_failures_total", "op", "rmdir", in.rmdir_failures);
    family(out, "unlinkd_lost_events_total", "counter",
           "Events dropped between the kernel and the daemon (ring buffer full); counts stay exact.");
    sample(out, "unlinkd_lost_events_total", in.lost_events);
    family(out, "unlinkd_suppressed_signals_total", "counter",
           "Deleted signals not sent (over max_signals_per_sec, or never streamed).");
    sample(out, "unlinkd_suppressed_signals_total", in.suppressed_signals);
    family(out, "unlinkd_events_unstreamed_total", "counter",
           "Deletions counted but not streamed to the daemon (the kernel's stream budget).");
    sample(out, "unlinkd_events_unstreamed_total", in.events_unstreamed);
    family(out, "unlinkd_lost_exits_total", "counter", "Deletions counted whose result is unknown (exit never seen).");
    sample(out, "unlinkd_lost_exits_total", in.lost_exits);
    family(out, "unlinkd_tracked_processes", "gauge", "Processes in the kernel's per-process table.");
    sample(out, "unlinkd_tracked_processes", in.tracked_processes);
    family(out, "unlinkd_evicted_processes_total", "counter",
           "Processes dropped from the per-process table to make room (LRU).");
    sample(out, "unlinkd_evicted_processes_total", in.evicted_processes);
    family(out, "unlinkd_attach_mode", "gauge", "The attach mode in effect.");
    sample(out, "unlinkd_attach_mode", "mode", in.attach_mode, 1);
    family(out, "unlinkd_build_info", "gauge", "The daemon's version.");
    sample(out, "unlinkd_build_info", "version", in.version, 1);
    family(out, "unlinkd_unit_deletes_total", "counter",
           "Successful deletions by the processes of a systemd unit still in the per-process table: the 50 busiest "
           "units, the rest as unit=\"other\", no unit as unit=\"none\".");
    for (const auto& u : busiest_units(in.units))
        sample(out, "unlinkd_unit_deletes_total", "unit", u.unit, u.deletes);
    return out;
}

}  // namespace unlinkd

namespace unlinkd {

bool http_head_complete(std::string_view received)
{
    return received.find("\r\n\r\n") != std::string_view::npos || received.find("\n\n") != std::string_view::npos;
}

HttpAnswer http_answer(std::string_view request_head)
{
    auto eol = request_head.find('\n');
    if (eol == std::string_view::npos)
        return {400};
    std::string_view line = request_head.substr(0, eol);
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return {400};
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (method.empty() || target.empty() || (version != "HTTP/1.0" && version != "HTTP/1.1"))
        return {400};
    // A method is a token: letters, the only ones in use.
    if (!std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
        return {400};
    if (target.front() != '/')
        return {400};
    if (method != "GET" && method != "HEAD")
        return {405};
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics")
        return {404};
    return {200, method == "HEAD"};
}

std::string http_response(int status, std::string_view content_type, std::string_view body, bool head)
{
    const char* reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 408 ? "Request Timeout"
                         : status == 503 ? "Service Unavailable"
                                         : "Error";
    // Appended piece by piece: "literal" + std::to_string() trips GCC 12's
    // false -Wrestrict at -O3 (PR 105651).
    std::string out = "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason;
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
    if (status == 405)
        out += "Allow: GET, HEAD\r\n";
    out += "Connection: close\r\n\r\n";
    if (!head)
        out += body;
    return out;
}

}  // namespace unlinkd
